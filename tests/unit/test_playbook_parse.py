from ailab.playbook import HostRecap, PlaybookResult, parse_changed_tasks, parse_recap

OUTPUT = """
PLAY [Base configuration of every node] ****************************************

TASK [common : Set the hostname to the inventory name] *************************
ok: [fe01]
changed: [t4-01]

RUNNING HANDLER [slurm_compute : Restart slurmd] *******************************
changed: [t4-01]

PLAY RECAP *********************************************************************
fe01 : ok=12   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0
t4-01 : ok=14   changed=2    unreachable=0    failed=1    skipped=1    rescued=0    ignored=0
"""


def test_parse_recap():
    recap = parse_recap(OUTPUT)
    assert recap["fe01"] == HostRecap(ok=12, changed=0, unreachable=0, failed=0, skipped=3)
    assert recap["t4-01"].changed == 2 and recap["t4-01"].failed == 1


def test_parse_changed_tasks():
    assert parse_changed_tasks(OUTPUT) == [
        ("common : Set the hostname to the inventory name", "t4-01"),
        ("slurm_compute : Restart slurmd", "t4-01"),
    ]


def test_result_ok_needs_no_failed_host():
    result = PlaybookResult(returncode=0, seconds=1.0, recap=parse_recap(OUTPUT))
    assert not result.ok
    assert result.changed == 2
    assert "changed=2 failed=1" in result.summary()
