"""Rule 6 for running jobs: ailab-idle-gpus (ailab/nodetools/idlegpus.py) decides from Prometheus' samples
which jobs' owners get the one idle-GPU mail and which jobs are cancelled (opt-in); its configuration comes
from the model (ailab.monitoring.idle_gpus_config) and the policy's two fields are checked."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import json
import smtplib

import pytest

from ailab import monitoring
from ailab.inventory import load_cluster
from ailab.nodetools import idlegpus
from ailab.nodetools.idlegpus import Action, Gpu
from ailab.parse import build_cluster
from tests.unit.test_model_validation import good, only, problems_of, set_all

NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
A0 = Gpu("101", "student1", "t4-01", "0")
A1 = Gpu("101", "student1", "t4-01", "1")
B0 = Gpu("102", "student2", "a40-01", "0")


# The decision ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "interval", "least"),
    [(60, 30, 119), (1, 15, 3), (2, 15, 7), (1, 60, 2), (5, 300, 2)],
)
def test_a_window_counts_with_all_its_scrapes_but_one(minutes, interval, least):
    assert idlegpus.least_samples(minutes, interval) == least


def test_idle_means_every_sample_zero_and_the_window_covered():
    maxima = {A0: 0.0, A1: 35.0, B0: 0.0}
    counts = {A0: 8.0, A1: 8.0, B0: 3.0}  # B0: a job that started a minute ago
    assert idlegpus.idle(maxima, counts, least=7) == {A0}


PLAN = [
    # (running, idle for mail, idle for cancel, state, cancel on) -> actions
    ("fresh job, GPU idle: one mail", [A0], {A0}, set(), {}, False, [("mail", "101", (A0,))]),
    ("busy job: nothing", [A0], set(), set(), {}, True, []),
    ("mailed before: no second mail", [A0], {A0}, {A0}, {"101": {"mailed": "t"}}, False, []),
    ("two GPUs, one idle: the mail names it", [A0, A1], {A1}, set(), {}, False, [("mail", "101", (A1,))]),
    ("mailed, cancel on, all idle: cancel", [A0, A1], {A0, A1}, {A0, A1}, {"101": {"mailed": "t"}}, True,
     [("cancel", "101", (A0, A1))]),
    ("mailed, cancel on, one GPU busy: no cancel", [A0, A1], {A0}, {A0}, {"101": {"mailed": "t"}}, True, []),
    ("mailed, cancel off: nothing", [A0], {A0}, {A0}, {"101": {"mailed": "t"}}, False, []),
    ("not yet mailed: the mail comes before a cancel", [A0], {A0}, {A0}, {}, True, [("mail", "101", (A0,))]),
    ("cancelled already: nothing", [A0], {A0}, {A0}, {"101": {"mailed": "t", "cancelled": "t"}}, True, []),
    ("two jobs, in job-id order", [B0, A0], {A0, B0}, set(), {}, False,
     [("mail", "101", (A0,)), ("mail", "102", (B0,))]),
]  # fmt: skip


@pytest.mark.parametrize(("why", "running", "mail", "cancel", "state", "cancel_on", "want"), PLAN)
def test_plan(why, running, mail, cancel, state, cancel_on, want):
    got = idlegpus.plan(running, mail, cancel, state, cancel_on)
    assert [(a.kind, a.jobid, a.gpus) for a in got] == want, why


def test_array_and_numeric_job_ids_sort_by_number():
    jobs = [Gpu("1000", "u", "n", "0"), Gpu("999_3", "u", "n", "1"), Gpu("999", "u", "n", "2")]
    assert [a.jobid for a in idlegpus.plan(jobs, set(jobs), set(), {}, False)] == ["999", "999_3", "1000"]


def test_jobs_no_longer_running_are_forgotten():
    state = {"101": {"mailed": "t"}, "55": {"mailed": "t", "cancelled": "t"}}
    assert idlegpus.forget_finished(state, [A0]) == {"101": {"mailed": "t"}}


# The mail --------------------------------------------------------------------------------------------


def config(**changes) -> idlegpus.Config:
    base = idlegpus.parse_config(monitoring.idle_gpus_config(sim_cluster()), "test")
    return idlegpus.Config(**{**base.__dict__, **changes})


def sim_cluster():
    cluster, problems = load_cluster("inventory/sim")
    assert problems == []
    return cluster


def parsed(msg) -> email.message.Message:
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def test_the_mail_names_the_job_its_idle_gpus_rule_6_and_how_to_cancel():
    msg = parsed(
        idlegpus.compose(config(cancel_minutes=0), Action("mail", "101", "student1", (A1,)), "a@b.c", NOW)
    )
    body = msg.get_content()
    assert msg["To"] == "a@b.c" and msg["X-Ailab-Notice"] == "idle-gpu-mail 101"
    assert msg["Subject"] == "[ailab-sim] Job 101 holds an idle GPU (usage rule 6)"
    assert "GPU 1 on t4-01 at 0 % utilisation for the last 1 minute." in " ".join(body.split())
    assert "  scancel 101" in body and "only mail about this job" in body
    assert "cancelled" not in body  # cancelling is off
    assert "support@its.aau.dk" in body


def test_with_cancelling_on_the_mail_warns_and_the_cancel_has_its_own_mail():
    c = config(cancel_minutes=30)
    warn = parsed(idlegpus.compose(c, Action("mail", "101", "student1", (A0,)), "a@b.c", NOW)).get_content()
    assert "stay at 0 % for 30 minutes is cancelled" in " ".join(warn.split())
    done = parsed(idlegpus.compose(c, Action("cancel", "101", "student1", (A0, A1)), "a@b.c", NOW))
    assert done["Subject"] == "[ailab-sim] Job 101 cancelled: its GPUs were idle (usage rule 6)"
    assert done["X-Ailab-Notice"] == "idle-gpu-cancel 101"
    assert "GPU 0 on t4-01, GPU 1 on t4-01 had been at 0 %" in " ".join(done.get_content().split())


# One run against a Prometheus answer -----------------------------------------------------------------


def vector(values: dict[Gpu, float]) -> list[dict]:
    return [{"metric": {"__name__": "x", **g.__dict__}, "value": [1.0, str(v)]} for g, v in values.items()]


class FakePrometheus:
    """Answers the tool's three kinds of query from per-GPU maxima and counts (as Prometheus' HTTP API)."""

    def __init__(self, running, maxima, counts):
        self.running, self.maxima, self.counts = running, maxima, counts
        self.asked: list[str] = []

    def __call__(self, expr: str) -> list[dict]:
        self.asked.append(expr)
        if expr == idlegpus.METRIC:
            return vector(dict.fromkeys(self.running, 0.0))
        if expr.startswith("max_over_time("):
            return vector(self.maxima)
        if expr.startswith("count_over_time("):
            return vector(self.counts)
        raise AssertionError(expr)


def one_run(tmp_path, prometheus, c=None, send=None, cancel=None, dry_run=False):
    c = c or config(state=str(tmp_path / "state.json"))
    sent, cancelled = [], []
    code = idlegpus.run(
        c,
        prometheus,
        send or sent.append,
        cancel or cancelled.append,
        NOW,
        dry_run=dry_run,
        out=io.StringIO(),
    )
    return code, sent, cancelled


def test_a_run_mails_once_and_remembers_it(tmp_path):
    prometheus = FakePrometheus([A0, B0], {A0: 0.0, B0: 50.0}, {A0: 4.0, B0: 4.0})
    code, sent, cancelled = one_run(tmp_path, prometheus)
    assert code == 0 and cancelled == [] and [m["To"] for m in sent] == ["student1@sim.ailab.test"]
    assert "max_over_time(ailab_job_gpu_utilization_percent[1m])" in prometheus.asked
    assert json.loads((tmp_path / "state.json").read_text())["101"]["mailed"] == NOW.isoformat()
    code, sent, _ = one_run(tmp_path, prometheus)
    assert code == 0 and sent == []


def test_a_cancel_run_cancels_the_mailed_job_and_says_so(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"101": {"mailed": "earlier"}}))
    prometheus = FakePrometheus([A0], {A0: 0.0}, {A0: 8.0})
    c = config(state=str(state), mail_minutes=1, cancel_minutes=2)
    code, sent, cancelled = one_run(tmp_path, prometheus, c)
    assert (
        code == 0 and cancelled == ["101"] and [m["X-Ailab-Notice"] for m in sent] == ["idle-gpu-cancel 101"]
    )
    assert "cancelled" in json.loads(state.read_text())["101"]


def test_a_failed_mail_is_not_recorded_and_is_tried_again(tmp_path):
    def refuse(msg):
        raise smtplib.SMTPRecipientsRefused({"a": (554, b"no")})

    prometheus = FakePrometheus([A0], {A0: 0.0}, {A0: 4.0})
    code, _, _ = one_run(tmp_path, prometheus, send=refuse)
    assert code == 1 and json.loads((tmp_path / "state.json").read_text()) == {}
    code, sent, _ = one_run(tmp_path, prometheus)
    assert code == 0 and len(sent) == 1


def test_a_failed_cancel_sends_no_mail(tmp_path):
    def fail(jobid):
        raise OSError("scancel 101 exited 1: Invalid job id")

    (tmp_path / "state.json").write_text(json.dumps({"101": {"mailed": "t"}}))
    c = config(state=str(tmp_path / "state.json"), cancel_minutes=2)
    code, sent, _ = one_run(tmp_path, FakePrometheus([A0], {A0: 0.0}, {A0: 8.0}), c, cancel=fail)
    assert code == 1 and sent == []


def test_dry_run_changes_nothing(tmp_path):
    code, sent, _ = one_run(tmp_path, FakePrometheus([A0], {A0: 0.0}, {A0: 4.0}), dry_run=True)
    assert code == 0 and sent == [] and not (tmp_path / "state.json").exists()


def test_a_user_without_an_address_is_skipped_but_remembered(tmp_path):
    stranger = Gpu("103", "nobody9", "t4-01", "0")
    code, sent, _ = one_run(tmp_path, FakePrometheus([stranger], {stranger: 0.0}, {stranger: 4.0}))
    assert code == 0 and sent == []
    assert "103" in json.loads((tmp_path / "state.json").read_text())


# Configuration -------------------------------------------------------------------------------------------


def test_the_rendered_configuration_is_what_the_tool_reads():
    c = config()
    assert (c.mail_minutes, c.cancel_minutes, c.scrape_interval_s) == (1, 0, 15)
    assert c.prometheus == f"http://127.0.0.1:{monitoring.PROMETHEUS_PORT}"
    assert c.smtp == f"10.213.0.10:{monitoring.SMTP_PORT}" and c.helo == "ctl01"
    assert c.users["student1"] == "student1@sim.ailab.test" and c.state == monitoring.IDLE_GPUS_STATE


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"smtp": "fe01"}, "'smtp' must be host:port"),
        ({"mail_minutes": True}, "'mail_minutes' must be a int"),
        ({"cancel_minutes": -1}, "'cancel_minutes' is -1, below 0"),
        ({"users": {"a": 1}}, "'users' must map user names to addresses"),
        ({"prometheus": None}, "'prometheus' must be a str"),
    ],
)
def test_a_bad_configuration_is_refused_with_a_fix(change, needle):
    data = {**monitoring.idle_gpus_config(sim_cluster()), **change}
    with pytest.raises(idlegpus.ConfigError, match="fix: re-run the converge") as e:
        idlegpus.parse_config(data, "idle-gpus.json")
    assert needle in str(e.value)


def test_main_exits_2_on_an_unreadable_configuration(tmp_path, capsys):
    assert idlegpus.main(["--config", str(tmp_path / "none.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(idlegpus.ConfigError, match="move it aside"):
        idlegpus.load_state(tmp_path / "state.json")


def test_the_mta_takes_the_monitoring_hosts_mail_when_only_students_are_mailed():
    groups, hostvars = good()
    groups["monitoring"] = ["ctl"]
    cluster, problems = build_cluster(groups, hostvars)
    assert problems == [] and not cluster.monitoring.alerts_to and cluster.policy.idle_gpu_mail_minutes == 60
    assert monitoring.host_settings(cluster, "fe")["smtp_clients"] == ["10.0.0.2"]
    assert monitoring.host_settings(cluster, "ctl")["idle_gpus"]
    set_all(hostvars, "ailab_policy", {"idle_gpu_mail_minutes": 0})
    off, _ = build_cluster(groups, hostvars)
    assert monitoring.host_settings(off, "fe")["smtp_clients"] == []
    assert not monitoring.host_settings(off, "ctl")["idle_gpus"]


# jobstats' GPU figures also need the monitoring host to be the controller: off where it is not, so each
# row shows the one problem it is about.
NO_JOBSTATS = {"job_gpu_stats": False}
BAD = [
    (
        {"idle_gpu_cancel_minutes": 30},
        ("ctl",),
        {},
        ("idle_gpu_cancel_minutes", "cancelled without a warning"),
    ),
    ({"idle_gpu_mail_minutes": 0, "idle_gpu_cancel_minutes": 90}, ("ctl",), {}, ("mailed never", "above")),
    (
        {"idle_gpu_mail_minutes": 1},
        ("ctl",),
        {},
        ("idle_gpu_mail_minutes", "four scrapes", "set it to 2 or more"),
    ),
    ({"idle_gpu_mail_minutes": -5}, ("ctl",), {}, ("idle_gpu_mail_minutes", "minimum 0")),
    (
        {"idle_gpu_cancel_minutes": 120},
        ("fe",),
        NO_JOBSTATS,
        ("monitoring host fe is not a Slurm controller", "scancel"),
    ),
    (
        {"idle_gpu_cancel_minutes": 120},
        (),
        {},
        ("no host is in group monitoring", "idle_gpu_cancel_minutes: 0"),
    ),
]


@pytest.mark.parametrize(("policy", "monitors", "monitoring_settings", "needles"), BAD)
def test_bad_idle_gpu_policies_are_refused_with_a_fix(policy, monitors, monitoring_settings, needles):
    groups, hostvars = good()
    groups["monitoring"] = list(monitors)
    for hv in hostvars.values():
        hv.setdefault("ailab_policy", {}).update(policy)
        hv["ailab_monitoring"] = dict(monitoring_settings)
    only(problems_of(groups, hostvars), *needles)
