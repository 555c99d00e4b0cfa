"""Issue 11, part 3 "Onboarding": `ailab users import FORM.csv -i INVENTORY [--dry-run]`.

Every bad input is refused with a line naming the form's row (the header is row 1) and column, and
nothing on disk changes; good input adds users with uids that are never reused, updates existing ones in
place and is idempotent.  The CLI cases run on a copy of inventory/sim (no Docker).
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path

import pytest
import yaml

from ailab.cli import main
from ailab.model import User
from ailab.onboarding import (
    column_key,
    next_uid,
    parse_form,
    render_uid_record,
    render_users_file,
    run_import,
    sniff_delimiter,
    verify_rendered,
    yaml_scalar,
)

ROOT = Path(__file__).resolve().parents[2]
HEADER = "username,full_name,email,project\n"
GOOD = "ab12cd,Anna Bech,ab12cd@student.aau.dk,course-ml\n"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "sim", target)
    return target


def users_file(inventory: Path) -> Path:
    return inventory / "group_vars" / "all" / "users.yml"


def record_file(inventory: Path) -> Path:
    return inventory / "group_vars" / "all" / "uids.yml"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def run(inventory: Path, form: bytes | str, *extra: str, name: str = "form.csv") -> tuple[int, str, str]:
    path = inventory.parent / name
    path.write_bytes(form.encode() if isinstance(form, str) else form)
    out, err = io.StringIO(), io.StringIO()
    code = run_import(path, inventory, dry_run="--dry-run" in extra, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def imported(inventory: Path) -> dict[str, dict]:
    data = yaml.safe_load(users_file(inventory).read_text())
    return {u["name"]: u for u in data["ailab_users"]}


def record(inventory: Path) -> dict[str, int]:
    return yaml.safe_load(record_file(inventory).read_text())["ailab_uid_record"]


# Bad input: a row-numbered line and nothing written ---------------------------------------------------

BAD = [
    pytest.param(
        HEADER + GOOD + "xy99zz,X Y,xy@example.org,thesis\n" + GOOD,
        4,
        "username",
        "duplicate username 'ab12cd': also on row 2",
        "merge row 4 into row 2",
        id="duplicate-username",
    ),
    pytest.param(
        HEADER + "ab12cd,Anna Bech,ab12cd@,course-ml\n", 2, "email", "has no domain", "", id="email-at-end"
    ),
    pytest.param(
        HEADER + "ab12cd,Anna Bech,ab12cd,course-ml\n", 2, "email", "has no domain", "", id="email-no-at"
    ),
    pytest.param(
        HEADER + "ab12cd,Anna Bech,ab12cd@localhost,course-ml\n",
        2,
        "email",
        "has no domain",
        "",
        id="email-bare-host",
    ),
    pytest.param(
        HEADER + "ab12cd,Anna Bech,Anna <ab12cd@aau.dk>,course-ml\n",
        2,
        "email",
        "is not an e-mail address",
        "",
        id="email-with-name",
    ),
    pytest.param(
        HEADER + GOOD + "xy99zz,X Y,xy@example.org,course-nlp\n",
        3,
        "project",
        "unknown project or course 'course-nlp'",
        "course-ml",
        id="unknown-project",
    ),
    pytest.param(
        HEADER + "AB12CD,Anna Bech,ab12cd@aau.dk,course-ml\n",
        2,
        "username",
        "is not a POSIX username",
        "'ab12cd'",
        id="username-uppercase",
    ),
    pytest.param(
        HEADER + "1ab,Anna Bech,ab12cd@aau.dk,course-ml\n",
        2,
        "username",
        "is not a POSIX username",
        "university login",
        id="username-digit-first",
    ),
    pytest.param(
        HEADER + "ab cd,Anna Bech,ab12cd@aau.dk,course-ml\n",
        2,
        "username",
        "is not a POSIX username",
        "",
        id="username-space",
    ),
    pytest.param(
        HEADER + "daemon,Anna Bech,ab12cd@aau.dk,course-ml\n",
        2,
        "username",
        "a system account or group",
        "",
        id="username-system-account",
    ),
    pytest.param(
        HEADER + 'ab12cd,"Bech, Anna",ab12cd@aau.dk,course-ml\n',
        2,
        "full_name",
        "GECOS",
        "",
        id="full-name-comma",
    ),
    pytest.param(
        HEADER + "ab12cd,,ab12cd@aau.dk,course-ml\n", 2, "full_name", "is empty", "", id="empty-cell"
    ),
    pytest.param(
        "username,full_name,email\n" + "ab12cd,Anna Bech,ab12cd@aau.dk\n",
        1,
        "project",
        "required column is missing",
        "add a column named project",
        id="missing-column",
    ),
    pytest.param("username,email,project,Email\n", 1, "email", "appears twice", "", id="column-twice"),
    pytest.param(
        HEADER.rstrip() + ",extension_until\n" + GOOD.rstrip() + ",2027-02-30\n",
        2,
        "extension_until",
        "is not a date",
        "YYYY-MM-DD",
        id="extension-no-such-day",
    ),
    pytest.param(
        HEADER.rstrip() + ",extension_until\n" + GOOD.rstrip() + ",01/08/2027\n",
        2,
        "extension_until",
        "is not a date",
        "YYYY-MM-DD",
        id="extension-not-iso",
    ),
    pytest.param(
        (HEADER + GOOD + "xy99zz,S\u00f8ren Holm,xy@example.org,thesis\n").encode("cp1252"),
        3,
        "file",
        "is not UTF-8",
        "CSV UTF-8",
        id="not-utf8",
    ),
]


@pytest.mark.parametrize(("form", "row", "column", "message", "fix"), BAD)
def test_bad_input_names_row_and_column_and_writes_nothing(inventory, form, row, column, message, fix):
    before = snapshot(inventory)
    code, out, err = run(inventory, form)
    assert code == 1, (out, err)
    lines = [line for line in err.splitlines() if line.startswith(f"form.csv row {row}: {column}: ")]
    assert lines, err
    assert any(message in line and fix in line.split(" -- fix: ", 1)[1] for line in lines), err
    assert "nothing was written" in err
    assert snapshot(inventory) == before  # the uid record included


def test_uid_clash_with_an_existing_user(inventory):
    """gone1 had 200950 (the record says so) and left; someone put that uid on a new entry by hand."""
    record_file(inventory).write_text(render_uid_record({"student1": 200001, "gone1": 200950}))
    text = users_file(inventory).read_text()
    users_file(inventory).write_text(
        text + "  - name: hand1\n    uid: 200950\n    gid: 200950\n    full_name: Hand Made\n"
        "    email: hand1@sim.ailab.test\n    project: thesis\n"
    )
    before = snapshot(inventory)
    code, _, err = run(inventory, HEADER + "gone1,Gone Again,gone1@example.org,thesis\n")
    assert code == 1
    assert (
        "form.csv row 2: username: uid clash: gone1 had uid 200950 (uid record), which hand1 now has" in err
    )
    assert "user hand1: uid: uid clash: 200950 was issued to gone1" in err
    assert snapshot(inventory) == before


def test_a_user_whose_uid_differs_from_the_record_is_refused(inventory):
    record_file(inventory).write_text(render_uid_record({"student1": 200005}))
    before = snapshot(inventory)
    code, _, err = run(inventory, HEADER + GOOD)
    assert code == 1
    assert "user student1: uid: is 200001 but the uid record gave student1 uid 200005" in err
    assert snapshot(inventory) == before


def test_every_problem_is_reported_in_one_run(inventory):
    form = (
        HEADER
        + "AB,Anna Bech,ab12cd@aau.dk,course-ml\n"
        + "xy99zz,X Y,xy@,course-ml\n"
        + "zz11aa,Z Z,zz@example.org,nope\n"
    )
    code, _, err = run(inventory, form)
    assert code == 1
    problems = [line for line in err.splitlines() if " -- fix: " in line]
    assert [p.split(":", 2)[:2] for p in problems] == [
        ["form.csv row 2", " username"],
        ["form.csv row 3", " email"],
        ["form.csv row 4", " project"],
    ]


def test_a_missing_form_is_a_problem_not_a_traceback(inventory):
    out, err = io.StringIO(), io.StringIO()
    assert run_import(inventory / "nope.csv", inventory, out=out, err=err) == 1
    assert "cannot be read" in err.getvalue()


# Good input ------------------------------------------------------------------------------------------


def test_bom_semicolons_extra_columns_and_header_case(inventory):
    form = (
        "\ufeffID;Start time;End time; USERNAME ;Full Name;E-mail;Project;Supervisor;Extension Until\r\n"
        '7;1/9/2026 10:00;10:05;ab12cd;"S\u00f8ren; Bech";ab12cd@student.aau.dk;course-ml;Prof. X;\r\n'
        "8;x;x;xy99zz;Xu Yi;xy99zz@student.aau.dk;thesis;;2027-08-01\r\n"
        ";;;;;;;;\r\n"
    ).encode()
    code, out, err = run(inventory, form)
    assert code == 0, err
    users = imported(inventory)
    assert users["ab12cd"] == {
        "name": "ab12cd",
        "uid": 200901,  # after admin1's 200900, the highest uid ever issued
        "gid": 200901,
        "full_name": "S\u00f8ren; Bech",
        "email": "ab12cd@student.aau.dk",
        "project": "course-ml",
    }
    assert users["xy99zz"]["uid"] == users["xy99zz"]["gid"] == 200902
    assert users["xy99zz"]["extension_until"] == "2027-08-01"
    assert "ssh_keys" not in users["ab12cd"]
    assert "form.csv row 2: add ab12cd (uid 200901" in out and "form.csv row 3: add xy99zz" in out
    assert "2 new user(s) have no SSH key: they add theirs later" in out
    assert record(inventory) == {
        "student1": 200001,
        "student2": 200002,
        "student3": 200003,
        "admin1": 200900,
        "ab12cd": 200901,
        "xy99zz": 200902,
    }
    assert main(["inventory", "check", "-i", str(inventory)]) == 0


def test_existing_entries_and_comments_stay_byte_identical(inventory):
    before = users_file(inventory).read_text()
    assert run(inventory, HEADER + GOOD)[0] == 0
    after = users_file(inventory).read_text()
    assert after.startswith(before)
    assert after[len(before) :] == (
        "  - name: ab12cd\n"
        "    uid: 200901\n"
        "    gid: 200901\n"
        "    full_name: Anna Bech\n"
        "    email: ab12cd@student.aau.dk\n"
        "    project: course-ml\n"
    )


def test_reimport_is_idempotent(inventory):
    form = HEADER + GOOD + "xy99zz,Xu Yi,xy99zz@example.org,thesis\n"
    assert run(inventory, form)[0] == 0
    after_first = snapshot(inventory)
    code, out, err = run(inventory, form)
    assert code == 0, err
    assert "2 unchanged; nothing to change" in out
    assert snapshot(inventory) == after_first


def test_same_named_row_updates_in_place_and_keeps_uid_keys_and_extension(inventory):
    before = users_file(inventory).read_text()
    form = HEADER + "student3,Student Drei,drei@sim.ailab.test,course-ml\n"
    code, out, _ = run(inventory, form)
    assert code == 0
    assert "update student3 (uid 200003): full_name, email, project" in out
    user = imported(inventory)["student3"]
    assert (user["uid"], user["gid"]) == (200003, 200003)
    assert user["extension_until"] == "2027-08-01"  # the empty cell does not drop the extension
    assert len(user["ssh_keys"]) == 1
    after = users_file(inventory).read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [
        ("    full_name: Student Three", "    full_name: Student Drei"),
        ("    email: student3@sim.ailab.test", "    email: drei@sim.ailab.test"),
        ("    project: thesis", "    project: course-ml"),
    ]


def test_an_added_extension_becomes_a_line_of_the_entry(inventory):
    form = "username,full_name,email,project,extension_until\nstudent1,Student One,student1@sim.ailab.test,"
    assert run(inventory, form + "course-ml,2027-08-01\n")[0] == 0
    text = users_file(inventory).read_text()
    assert 'project: course-ml\n    extension_until: "2027-08-01"\n  - name: student2' in text
    assert imported(inventory)["student1"]["ssh_keys"]


def test_uids_are_never_reused_and_a_returning_name_gets_its_own_back(inventory):
    assert run(inventory, HEADER + GOOD)[0] == 0
    assert imported(inventory)["ab12cd"]["uid"] == 200901
    # ab12cd leaves: their entry goes, the record keeps their uid.
    text = users_file(inventory).read_text()
    users_file(inventory).write_text(text[: text.index("  - name: ab12cd\n")])
    assert run(inventory, HEADER + "xy99zz,Xu Yi,xy99zz@example.org,thesis\n")[0] == 0
    assert imported(inventory)["xy99zz"]["uid"] == 200902
    code, out, _ = run(inventory, HEADER + GOOD)
    assert code == 0
    assert imported(inventory)["ab12cd"]["uid"] == 200901
    assert "add ab12cd (uid 200901, their recorded uid, back" in out
    assert record(inventory)["ab12cd"] == 200901 and record(inventory)["xy99zz"] == 200902


def test_dry_run_prints_the_diffs_and_writes_nothing(inventory):
    before = snapshot(inventory)
    code, out, _ = run(inventory, HEADER + GOOD, "--dry-run")
    assert code == 0
    assert snapshot(inventory) == before
    assert f"--- {users_file(inventory)}\n+++ {users_file(inventory)}\n" in out
    assert "+  - name: ab12cd\n+    uid: 200901\n" in out
    assert f"--- {record_file(inventory)}\n+++ {record_file(inventory)}\n" in out
    assert "   admin1: 200900\n+  ab12cd: 200901\n" in out
    assert out.rstrip().endswith("dry run: nothing was written")


def test_the_first_import_creates_the_record_with_every_existing_user(inventory):
    record_file(inventory).unlink()
    before = snapshot(inventory)
    code, out, _ = run(inventory, HEADER + GOOD, "--dry-run")
    assert code == 0
    assert snapshot(inventory) == before
    assert f"--- /dev/null\n+++ {record_file(inventory)}\n" in out
    assert run(inventory, HEADER + GOOD)[0] == 0
    assert record(inventory) == {
        "student1": 200001,
        "student2": 200002,
        "student3": 200003,
        "admin1": 200900,
        "ab12cd": 200901,
    }


def test_the_cli_runs_the_import(inventory, capsys):
    form = inventory.parent / "form.csv"
    form.write_text(HEADER + GOOD)
    assert main(["users", "import", str(form), "-i", str(inventory), "--dry-run"]) == 0
    assert "dry run: nothing was written" in capsys.readouterr().out
    assert main(["users", "import", str(form), "-i", str(inventory)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert imported(inventory)["ab12cd"]["uid"] == 200901


def test_an_inventory_with_problems_is_refused_before_anything_is_planned(inventory, capsys):
    text = users_file(inventory).read_text()
    users_file(inventory).write_text(text.replace("uid: 200002", "uid: 200001", 1))
    before = snapshot(inventory)
    form = inventory.parent / "form.csv"
    form.write_text(HEADER + GOOD)
    assert main(["users", "import", str(form), "-i", str(inventory)]) == 2
    assert "duplicate uid 200001" in capsys.readouterr().err
    assert snapshot(inventory) == before


# Pure pieces -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (" Full Name ", "full_name"),
        ("E-mail", "email"),
        ("EMAIL", "email"),
        ("extension-until", "extension_until"),
    ],
)
def test_column_key(header, key):
    assert column_key(header) == key


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [("a,b,c", ","), ("a;b;c", ";"), ('"x,y";b;c', ";"), ('"x;y;z",b', ","), ("username", ",")],
)
def test_sniff_delimiter(line, delimiter):
    assert sniff_delimiter(line) == delimiter


def test_rows_are_spreadsheet_rows_even_with_a_multiline_cell():
    form = HEADER + 'ab12cd,"Anna\nBech",ab12cd@aau.dk,course-ml\n' + "xy,X Y,xy@,course-ml\n"
    rows, problems = parse_form(form.encode())
    assert rows == []
    assert [(p.where, p.field) for p in problems] == [("form row 2", "full_name"), ("form row 3", "email")]


def test_parse_form_reads_the_optional_columns():
    form = (
        "Username;Full_Name;Email;Project;Supervisor;Extension_Until\nab12cd;A B;a@b.dk;p;Prof X;2027-08-01\n"
    )
    [row], problems = parse_form(form)
    assert problems == []
    assert (row.row, row.supervisor, row.extension_until) == (2, "Prof X", dt.date(2027, 8, 1))


@pytest.mark.parametrize(
    ("taken", "avoid", "expected"),
    [
        (set(), set(), 200001),
        ({200001, 200900}, set(), 200901),  # never a gap: it may be a removed user's
        ({200005}, {200006}, 200007),
        ({1500}, set(), 200001),  # ids below the import's range do not pull it down
    ],
)
def test_next_uid(taken, avoid, expected):
    assert next_uid(taken, avoid) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Anna Bech",
        "yes",
        "no",
        "null",
        "O'Brien",
        'say "hi"',
        "a: b",
        "#x",
        " lead",
        "1abc",
        "S\u00f8ren",
        "x\u2028y",
    ],
)
def test_yaml_scalar_reads_back_as_the_same_string(value):
    assert yaml.safe_load(f"k: {yaml_scalar(value)}") == {"k": value}


NEW = User("ab12cd", 200101, 200101, "Anna Bech", "ab12cd@aau.dk", "p")


@pytest.mark.parametrize(
    "text",
    [
        "ailab_projects: []\nailab_users: []\n",
        "ailab_users:\n# nobody yet\nailab_projects: []\n",
        "ailab_projects: []\n",
        "# header\nailab_users:\n- name: x1\n  uid: 200001\n  gid: 200001\n  email: x@y.dk\n  project: p\n",
    ],
)
def test_render_users_file_appends_to_any_shape_of_list(text):
    existing = {}
    if "x1" in text:
        existing["x1"] = User("x1", 200001, 200001, "", "x@y.dk", "p")
    users = [*existing.values(), NEW]
    rendered = render_users_file(text, users, existing)
    assert verify_rendered(rendered, users) == []
    if existing:
        assert rendered.startswith(text)
        assert rendered[len(text) :].startswith("- name: ab12cd\n  uid: 200101\n")  # the list's indentation


def test_verify_rendered_catches_a_file_that_reads_back_differently():
    text = "ailab_users:\n  - name: ab12cd\n    uid: 200101\n    gid: 200101\n    full_name: Anna\n"
    assert verify_rendered(text, [NEW])
