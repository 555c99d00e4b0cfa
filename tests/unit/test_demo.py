"""`ailab demo` submits as a student unless told otherwise."""

from __future__ import annotations

import pytest

from ailab.demo import demo_commands, demo_user
from ailab.model import User


def user(name: str, admin: bool = False) -> User:
    return User(name, 2000, 2000, name, f"{name}@example.test", "p", admin=admin)


USERS = {u.name: u for u in (user("admin1", admin=True), user("student2"), user("student1"))}


def test_default_is_the_first_student_not_an_admin():
    assert demo_user(USERS, None) == "student1"


def test_requested_user_is_used():
    assert demo_user(USERS, "admin1") == "admin1"


def test_unknown_user_names_the_choices():
    with pytest.raises(
        ValueError, match=r"--user 'nobody' is not in ailab_users; use one of: admin1, student1"
    ):
        demo_user(USERS, "nobody")


def test_no_student_says_how_to_fix():
    with pytest.raises(ValueError, match="add one or pass --user"):
        demo_user({"admin1": USERS["admin1"]}, None)


def test_the_job_asks_for_a_gpu_and_waits():
    shell = demo_commands("~/d")
    assert "sbatch --parsable --wait demo-job.sh" in shell
    assert "#SBATCH --gres=gpu:1" in shell and "#SBATCH --time=00:05:00" in shell
