"""``ailab sim`` argument handling and output; errors exit non-zero with the fix."""

from __future__ import annotations

from ailab.cli import build_parser, main
from simulator.api import NodeStatus
from simulator.cli import render_status, split_exec_args


def status(name, state="running", connected=True, gpus=0, failed=(), in_inventory=True):
    return NodeStatus(
        name=name,
        container=f"ailab-{name}",
        groups=("compute", "compute_t4") if gpus else ("frontend",),
        state=state,
        address="10.213.0.21" if in_inventory else "",
        connected=connected,
        systemd="running" if state == "running" else None,
        gpus=gpus,
        gpu_model="t4" if gpus else None,
        failed_gpus=failed,
        in_inventory=in_inventory,
    )


def test_status_table():
    text = render_status(
        [
            status("fe01"),
            status("t4-01", gpus=2, failed=(1,)),
            status("stor01", state="absent", connected=False),
            status("ctl01", connected=False),
            status("old01", state="exited", in_inventory=False),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["NODE", "GROUPS", "STATE", "SYSTEMD", "ADDRESS", "GPUS"]
    assert "2x t4 (failed: 1)" in lines[2]
    assert "absent" in lines[3] and "(disconnected)" not in lines[3]
    assert "(disconnected)" in lines[4]
    assert "(not in inventory)" in lines[5]


def test_exec_takes_everything_after_double_dash():
    args = build_parser().parse_args(["sim", "exec", "fe01", "--user", "student1", "--", "ls", "-la", "/"])
    assert args.node == "fe01"
    assert split_exec_args(args.cmd, args.user) == ("student1", ["ls", "-la", "/"])
    args = build_parser().parse_args(["sim", "exec", "-u", "student2", "fe01", "--", "id", "--user"])
    assert split_exec_args(args.cmd, args.user) == ("student2", ["id", "--user"])
    assert split_exec_args(["hostname"]) == (None, ["hostname"])
    assert split_exec_args(["--user=x", "--"]) == ("x", [])


def test_unknown_node_exits_2_with_the_fix(capsys):
    assert main(["sim", "stop", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown node 'nope'" in err and "fix: use one of:" in err


def test_bad_gpu_index_exits_2(capsys):
    assert main(["sim", "gpu-fail", "t4-01", "7"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_gpu_load_arguments(capsys):
    args = build_parser().parse_args(["sim", "gpu-load", "t4-01", "1", "85", "--memory-mib", "2048"])
    assert (args.node, args.index, args.percent, args.memory_mib) == ("t4-01", 1, 85, 2048)
    assert build_parser().parse_args(["sim", "gpu-load", "t4-01", "0", "0"]).memory_mib == 0
    assert main(["sim", "gpu-load", "t4-01", "0", "150"]) == 2
    assert "from 0 to 100, not 150" in capsys.readouterr().err
    assert main(["sim", "gpu-load", "t4-01", "0", "50", "--memory-mib", "99999"]) == 2
    assert "from 0 to 16384" in capsys.readouterr().err


def test_bad_inventory_is_reported_by_ailab(tmp_path, capsys):
    assert main(["sim", "up", "-i", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
