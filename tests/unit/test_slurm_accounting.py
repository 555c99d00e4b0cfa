"""The slurm_accounting module's pure parts: parsing `sacctmgr -nP show ...` and planning the commands that
turn slurmdbd's state into the inventory's (roles/slurm_controller/library/slurm_accounting.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "slurm_accounting", ROOT / "roles/slurm_controller/library/slurm_accounting.py"
)
acct = importlib.util.module_from_spec(_spec)
sys.modules["slurm_accounting"] = acct  # dataclasses look their module up there
_spec.loader.exec_module(acct)

SPEC = {
    "cluster": "ailabsim",
    "default_qos": "ailab",
    "qos": [
        {
            "name": "ailab",
            "description": "AI-LAB default",
            "max_tres_per_user": "gres/gpu=2",
            "max_jobs_per_user": 8,
            "max_submit_jobs_per_user": 20,
        }
    ],
    "accounts": [
        {"name": "course-ml", "description": "Simulated course"},
        {"name": "thesis", "description": "Thesis project"},
    ],
    "users": [
        {"name": "student1", "account": "course-ml", "admin": False},
        {"name": "student2", "account": "course-ml", "admin": False},
        {"name": "student3", "account": "thesis", "admin": False},
        {"name": "admin1", "account": "thesis", "admin": True},
    ],
}

# What sacctmgr -nP prints for a fresh slurmdbd that slurmctld has registered with.
FRESH = {
    "clusters": "ailabsim\n",
    "qos": "normal|Normal QOS default|\n",
    "accounts": "root|default root account|root\n",
    "assocs": "ailabsim|root||normal||\nailabsim|root|root|normal||\n",
    "users": "root|root|Administrator\n",
}

# ... and after the module has run once (sacctmgr lower-cases descriptions and organizations).
CONVERGED = {
    "clusters": "ailabsim\n",
    "qos": "normal|Normal QOS default|||\nailab|ai-lab default|gres/gpu=2|8|20\n",
    "accounts": (
        "course-ml|simulated course|ailab\nroot|default root account|root\nthesis|thesis project|ailab\n"
    ),
    "assocs": (
        "ailabsim|root||normal||\n"
        "ailabsim|root|root|normal||\n"
        "ailabsim|course-ml||ailab|ailab|\n"
        "ailabsim|course-ml|student1|ailab|ailab|\n"
        "ailabsim|course-ml|student2|ailab|ailab|\n"
        "ailabsim|thesis||ailab|ailab|\n"
        "ailabsim|thesis|admin1|ailab|ailab|\n"
        "ailabsim|thesis|student3|ailab|ailab|\n"
        "othercluster|thesis|student9|normal||\n"
    ),
    "users": (
        "admin1|thesis|Administrator\nroot|root|Administrator\nstudent1|course-ml|None\n"
        "student2|course-ml|None\nstudent3|thesis|None\n"
    ),
}


def state(outputs: dict[str, str], **replace: str):
    return acct.parse_state(cluster="ailabsim", **{**outputs, **replace})


def plan(spec=SPEC, outputs=CONVERGED, jobs=None, **kwargs):
    return acct.plan(spec, state(outputs), jobs or {}, **kwargs)


def cmds(p) -> list[str]:
    return [" ".join(c) for c in p.commands]


def test_parse_state():
    s = state(CONVERGED)
    assert s.clusters == {"ailabsim"}
    assert s.qos["ailab"] == {
        "description": "ai-lab default",
        "max_tres_per_user": "gres/gpu=2",
        "max_jobs_per_user": "8",
        "max_submit_jobs_per_user": "20",
    }
    assert s.qos["normal"]["max_submit_jobs_per_user"] == ""  # unlimited
    assert s.accounts["thesis"]["organization"] == "ailab"
    assert acct.Assoc("course-ml", "student1", frozenset({"ailab"}), "ailab", "") in s.assocs
    assert not [a for a in s.assocs if a.user == "student9"], "other clusters' associations are ignored"
    assert s.admin_levels["admin1"] == "Administrator"
    assert s.default_accounts["student3"] == "thesis"


def test_fresh_database_gets_everything_in_order():
    got = cmds(plan(outputs=FRESH))
    assert got == [
        "add qos ailab Description=AI-LAB default MaxTRESPerUser=gres/gpu=2 MaxJobsPerUser=8 "
        "MaxSubmitJobsPerUser=20",
        "add account course-ml Cluster=ailabsim Description=Simulated course Organization=ailab QOS=ailab "
        "DefaultQOS=ailab",
        "add account thesis Cluster=ailabsim Description=Thesis project Organization=ailab QOS=ailab "
        "DefaultQOS=ailab",
        "add user admin1 Account=thesis Cluster=ailabsim QOS=ailab DefaultQOS=ailab DefaultAccount=thesis "
        "AdminLevel=Administrator",
        # One command per set of options: the same project's new students together.
        "add user student1,student2 Account=course-ml Cluster=ailabsim QOS=ailab DefaultQOS=ailab "
        "DefaultAccount=course-ml AdminLevel=None",
        "add user student3 Account=thesis Cluster=ailabsim QOS=ailab DefaultQOS=ailab "
        "DefaultAccount=thesis AdminLevel=None",
    ]


def test_cluster_missing_is_added_first():
    assert cmds(plan(outputs=FRESH, **{}))[0].startswith("add qos")
    p = acct.plan(SPEC, state(FRESH, clusters=""), {})
    assert cmds(p)[0] == "add cluster ailabsim"


def test_converged_state_needs_nothing():
    assert cmds(plan()) == []


@pytest.mark.parametrize(
    ("qos_line", "expected"),
    [
        ("ailab|ai-lab default|gres/gpu=4|8|20", "modify qos where name=ailab set MaxTRESPerUser=gres/gpu=2"),
        ("ailab|old text|gres/gpu=2|8|20", "modify qos where name=ailab set Description=AI-LAB default"),
        ("ailab|ai-lab default||8|20", "modify qos where name=ailab set MaxTRESPerUser=gres/gpu=2"),
        ("ailab|ai-lab default|gres/gpu=2|4|20", "modify qos where name=ailab set MaxJobsPerUser=8"),
        ("ailab|ai-lab default|gres/gpu=2|8|", "modify qos where name=ailab set MaxSubmitJobsPerUser=20"),
        (
            "ailab|ai-lab default|gres/gpu=2",  # before this module set job counts
            "modify qos where name=ailab set MaxJobsPerUser=8 MaxSubmitJobsPerUser=20",
        ),
    ],
)
def test_qos_drift_is_corrected(qos_line, expected):
    outputs = {**CONVERGED, "qos": f"normal|Normal QOS default|\n{qos_line}\n"}
    assert cmds(plan(outputs=outputs)) == [expected]


def test_policy_change_of_gpu_cap():
    spec = {**SPEC, "qos": [{**SPEC["qos"][0], "max_tres_per_user": "gres/gpu=8"}]}
    assert cmds(plan(spec=spec)) == ["modify qos where name=ailab set MaxTRESPerUser=gres/gpu=8"]


def test_policy_change_of_job_counts():
    spec = {**SPEC, "qos": [{**SPEC["qos"][0], "max_jobs_per_user": 4, "max_submit_jobs_per_user": 50}]}
    assert cmds(plan(spec=spec)) == [
        "modify qos where name=ailab set MaxJobsPerUser=4 MaxSubmitJobsPerUser=50"
    ]


def test_job_counts_left_out_are_cleared_and_then_left_alone():
    unlimited = {
        k: v for k, v in SPEC["qos"][0].items() if not k.startswith("max_") or k == "max_tres_per_user"
    }
    spec = {**SPEC, "qos": [unlimited]}
    assert cmds(plan(spec=spec)) == [
        "modify qos where name=ailab set MaxJobsPerUser=-1 MaxSubmitJobsPerUser=-1"
    ]
    cleared = {**CONVERGED, "qos": "ailab|ai-lab default|gres/gpu=2||\n"}
    assert cmds(plan(spec=spec, outputs=cleared)) == []


def test_qos_query_reads_the_job_counts():
    assert acct.QUERIES["qos"][-1] == "format=name,description,maxtrespu,maxjobspu,maxsubmitpu"


def test_user_association_with_wrong_qos_is_fixed():
    outputs = {
        **CONVERGED,
        "assocs": CONVERGED["assocs"].replace("student2|ailab|ailab|", "student2|normal||"),
    }
    assert cmds(plan(outputs=outputs)) == [
        "modify user where name=student2 account=course-ml cluster=ailabsim set QOS=ailab DefaultQOS=ailab"
    ]


def test_new_user_is_added_in_its_project():
    spec = {**SPEC, "users": [*SPEC["users"], {"name": "newbie", "account": "course-ml", "admin": False}]}
    assert cmds(plan(spec=spec)) == [
        "add user newbie Account=course-ml Cluster=ailabsim QOS=ailab DefaultQOS=ailab "
        "DefaultAccount=course-ml AdminLevel=None"
    ]


def test_admin_flag_change():
    spec = {**SPEC, "users": [{**u, "admin": u["name"] == "student1"} for u in SPEC["users"]]}
    assert cmds(plan(spec=spec)) == [
        "modify user where name=admin1 set AdminLevel=None",
        "modify user where name=student1 set AdminLevel=Administrator",
    ]


def test_removed_user_without_jobs_is_deleted():
    spec = {**SPEC, "users": [u for u in SPEC["users"] if u["name"] != "student2"]}
    p = plan(spec=spec, jobs={"student2": 0})
    assert cmds(p) == ["delete user where name=student2 account=course-ml cluster=ailabsim"]
    assert p.blocked == []


@pytest.mark.parametrize("jobs", [3, None])  # None: squeue could not tell
def test_removed_user_with_jobs_or_unknown_jobs_is_only_blocked(jobs):
    spec = {**SPEC, "users": [u for u in SPEC["users"] if u["name"] != "student2"]}
    p = plan(spec=spec, jobs={"student2": jobs})
    assert cmds(p) == [
        "modify user where name=student2 account=course-ml cluster=ailabsim set MaxSubmitJobs=0"
    ]
    assert p.blocked == ["student2"]


def test_blocked_user_is_not_blocked_twice_and_deleted_once_idle():
    spec = {**SPEC, "users": [u for u in SPEC["users"] if u["name"] != "student2"]}
    outputs = {
        **CONVERGED,
        "assocs": CONVERGED["assocs"].replace("student2|ailab|ailab|", "student2|ailab|ailab|0"),
    }
    busy = plan(spec=spec, outputs=outputs, jobs={"student2": 1})
    assert cmds(busy) == [] and busy.blocked == ["student2"]
    idle = plan(spec=spec, outputs=outputs, jobs={"student2": 0})
    assert cmds(idle) == ["delete user where name=student2 account=course-ml cluster=ailabsim"]


def test_block_policy_never_deletes():
    spec = {**SPEC, "users": [u for u in SPEC["users"] if u["name"] != "student2"]}
    p = plan(spec=spec, jobs={"student2": 0}, removed_users="block")
    assert cmds(p) == [
        "modify user where name=student2 account=course-ml cluster=ailabsim set MaxSubmitJobs=0"
    ]


def test_user_back_in_the_inventory_is_unblocked():
    outputs = {
        **CONVERGED,
        "assocs": CONVERGED["assocs"].replace("student2|ailab|ailab|", "student2|ailab|ailab|0"),
    }
    assert cmds(plan(outputs=outputs)) == [
        "modify user where name=student2 account=course-ml cluster=ailabsim set MaxSubmitJobs=-1"
    ]


def test_user_moving_project_gets_new_association_then_old_one_goes():
    spec = {
        **SPEC,
        "users": [{**u, "account": "thesis"} if u["name"] == "student1" else u for u in SPEC["users"]],
    }
    assert cmds(plan(spec=spec, jobs={"student1": 0})) == [
        "add user student1 Account=thesis Cluster=ailabsim QOS=ailab DefaultQOS=ailab",
        "modify user where name=student1 set DefaultAccount=thesis",
        "delete user where name=student1 account=course-ml cluster=ailabsim",
    ]


def test_removed_project_goes_once_its_users_are_gone():
    spec = {
        **SPEC,
        "accounts": [a for a in SPEC["accounts"] if a["name"] != "course-ml"],
        "users": [u for u in SPEC["users"] if u["account"] != "course-ml"],
    }
    p = plan(spec=spec, jobs={"student1": 0, "student2": 0})
    assert cmds(p) == [
        "delete user where name=student1,student2 account=course-ml cluster=ailabsim",  # one call per account
        "delete account where name=course-ml cluster=ailabsim",
    ]
    # One user still busy: the account stays (with that user blocked).
    p = plan(spec=spec, jobs={"student1": 0, "student2": 2})
    assert "delete account where name=course-ml cluster=ailabsim" not in cmds(p)
    assert p.blocked == ["student2"]


def test_accounts_not_made_by_the_module_are_left_alone():
    outputs = {
        **CONVERGED,
        "accounts": CONVERGED["accounts"] + "handmade|made by hand|physics\n",
        "assocs": CONVERGED["assocs"] + "ailabsim|handmade||normal||\nailabsim|handmade|guest|normal||\n",
        "users": CONVERGED["users"] + "guest|handmade|None\n",
    }
    assert cmds(plan(outputs=outputs, jobs={"guest": 0})) == []
    assert acct.stale_users(SPEC, state(outputs)) == []


def test_stale_users_lists_removed_and_moved_users():
    spec = {
        **SPEC,
        "users": [
            {**u, "account": "thesis"} if u["name"] == "student1" else u
            for u in SPEC["users"]
            if u["name"] != "student2"
        ],
    }
    assert acct.stale_users(spec, state(CONVERGED)) == ["student1", "student2"]


def test_plan_is_idempotent_after_applying_the_fresh_plan():
    # The converged outputs above are what the fresh plan produces: nothing is left to do.
    assert cmds(plan(outputs=FRESH)) and not cmds(plan(outputs=CONVERGED))


def test_a_years_students_are_added_in_a_few_commands():
    spec = {**SPEC, "users": [{"name": f"s{i:04d}", "account": "course-ml"} for i in range(1200)]}
    got = [c for c in plan(spec=spec, outputs=FRESH).commands if c[:2] == ["add", "user"]]
    per = acct.ADD_USERS_PER_COMMAND
    assert [len(c[2].split(",")) for c in got] == [per, per, 1200 - 2 * per]
    assert sorted(n for c in got for n in c[2].split(",")) == sorted(u["name"] for u in spec["users"])


def test_many_removed_users_go_in_one_command_per_account():
    """The yearly deletion removes thousands of users: one sacctmgr call per account, not per user."""
    per = acct.ADD_USERS_PER_COMMAND
    extra = [f"old{i:04d}" for i in range(per + 3)]
    lines = "\n".join(f"ailabsim|course-ml|{u}|ailab|ailab|" for u in extra)
    outputs = {**CONVERGED, "assocs": CONVERGED["assocs"].rstrip("\n") + "\n" + lines + "\n"}
    jobs = {u: 0 for u in extra} | {"old0001": 2, "old0002": None}
    p = plan(outputs=outputs, jobs=jobs)
    idle = [u for u in extra if jobs[u] == 0]
    assert cmds(p) == [
        f"delete user where name={','.join(idle[:per])} account=course-ml cluster=ailabsim",
        f"delete user where name={','.join(idle[per:])} account=course-ml cluster=ailabsim",
        "modify user where name=old0001,old0002 account=course-ml cluster=ailabsim set MaxSubmitJobs=0",
    ]
    assert p.blocked == ["old0001", "old0002"]


def test_job_counts_come_from_one_squeue_listing():
    assert acct.count_jobs(["a", "b", "c"], "a\nb\na\nz\n") == {"a": 2, "b": 1, "c": 0}
    assert acct.count_jobs(["a", "b"], None) == {"a": None, "b": None}
