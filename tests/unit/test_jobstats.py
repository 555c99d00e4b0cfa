"""jobstats (ailab/nodetools/jobstats.py): its parsers against output captured from the simulator's real
Slurm 22.05, nvidia-smi stand-in and Prometheus (tests/unit/data/jobstats/), its figures, hints and login
lines, its exit codes, the epilog; and the model's side (EpilogSlurmctld, the monitoring host check)."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from ailab import slurm
from ailab.monitoring import render_jobstats_epilog
from ailab.nodetools import jobstats as js
from ailab.parse import build_cluster
from tests.unit.test_model_validation import only, problems_of
from tests.unit.test_monitoring import with_monitoring

DATA = Path(__file__).parent / "data" / "jobstats"


def data(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:32.514", 32.514),
        ("00:00:00", 0),
        ("01:02:03", 3723),
        ("2-01:00:00", 2 * 86400 + 3600),
        ("12:00.5", 720.5),
        ("", None),
        ("213503982334-14:25:51", 213503982334 * 86400 + 14 * 3600 + 25 * 60 + 51),  # sstat's garbage AveCPU
        ("INVALID", None),
        ("1:2:3:4", None),
    ],
)
def test_parse_duration(text, seconds):
    assert js.parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "unit", "size"),
    [
        ("104K", "K", 104 * 1024),
        ("2000M", "M", 2000 << 20),
        ("16G", "M", 16 << 30),
        ("0", "K", 0),
        ("500", "M", 500 << 20),
        ("", "K", None),
        ("1.5G", "", int(1.5 * (1 << 30))),
        ("lots", "K", None),
    ],
)
def test_parse_size(text, unit, size):
    assert js.parse_size(text, unit) == size


def finished() -> dict[str, js.Job]:
    return {j.jobid: j for j in js.parse_sacct(data("finished-sacct.txt"))}


def test_finished_jobs_from_real_sacct():
    jobs = finished()
    assert set(jobs) == {"5", "8", "9"}
    five = jobs["5"]
    # JobName is the last field: a "|" in it stays in the name.
    assert five.name == "my|job" and five.user == "student1" and five.state == "COMPLETED"
    assert (five.cpus, five.elapsed, five.time_limit) == (2, 60, 3600)
    assert five.cpu_time == pytest.approx(32.514)
    # AllocTRES mem (what the job got: DefMemPerGPU x 2), not ReqMem (500M).
    assert five.mem_requested == 2000 << 20 and five.gpus_allocated == 2
    assert [s.jobid for s in five.steps] == ["5.batch", "5.extern", "5.0"]
    # Captured while slurmstepd could not read the job's processes (simulator compute nodes without
    # CAP_SYS_PTRACE, simulator/plan.py): no MaxRSS for the batch step; the extern step's few KiB must not
    # pose as the job's peak.
    assert five.max_rss is None
    assert js.parse_summary(five.admin_comment) is None
    assert js.parse_summary(jobs["8"].admin_comment) == [js.GpuFigure("hj-t4-01", 0, 48.0, 2048.0, 4)]
    assert js.parse_summary(jobs["9"].admin_comment) == [
        js.GpuFigure("hj-t4-02", 0, 90.0, 4096.0, 3),
        js.GpuFigure("hj-t4-02", 1, 10.0, 512.0, 3),
    ]


def test_a_working_steps_max_rss_is_the_peak():
    job = js.parse_sacct(
        "3|u|a|gpu|COMPLETED|0:0|2026-12-07T02:00:00|2026-12-07T02:10:00|600|60|4|00:20:00|500M|"
        "cpu=4,gres/gpu=1,mem=8G,node=1||n1||train\n"
        "3.batch||a||COMPLETED|0:0|x|y|600||4|00:15:00||cpu=4|1048576K|n1||batch\n"
        "3.extern||a||COMPLETED|0:0|x|y|600||4|00:00:00||cpu=4|4K|n1||extern\n"
        "3.0||a||COMPLETED|0:0|x|y|300||4|00:05:00||cpu=4|3G|n1||python\n"
    )[0]
    assert job.max_rss == 3 << 30 and job.mem_requested == 8 << 30 and job.cpu_time == 1200
    eff = js.efficiency(job, [])
    assert eff.cpu == pytest.approx(50.0) and eff.memory == pytest.approx(37.5)


@pytest.mark.parametrize(
    "gpus",
    [
        [js.GpuFigure("hj-t4-01", 0, 64.0, 2048.0, 4)],
        [js.GpuFigure("a40-01", 3, 99.9, 40000.0, 120), js.GpuFigure("a40-01", 1, 0.0, 0.0, 120)],
        [],
    ],
)
def test_the_summary_round_trips(gpus):
    text = js.format_summary(gpus)
    assert text == text.lower() and text.startswith("js1:") and len(text) < 200
    assert js.parse_summary(text) == sorted(gpus, key=lambda g: (g.node, g.index))
    # sacctmgr stores AdminComment in lower case (seen on 22.05); an admin's own comment is no summary.
    assert js.parse_summary(text.upper()) == js.parse_summary(text)


@pytest.mark.parametrize("text", ["", "checked by admin", "js1:node/x:1:2:3", "js1:n/0:1:2"])
def test_other_admin_comments_are_no_summary(text):
    assert js.parse_summary(text) is None


def test_a_running_job_from_real_sacct_sstat_scontrol_and_nvidia_smi():
    (job,) = js.parse_sacct(data("running-sacct.txt"))
    assert job.running and job.state == "RUNNING" and job.elapsed == 25
    steps = js.parse_sstat(data("running-sstat.txt"))
    assert [(s.jobid, s.max_rss, s.total_cpu) for s in steps] == [
        ("9.extern", 104 * 1024, 0.0),
        ("9.batch", None, None),
    ]
    running = js.Job(**{**job.__dict__, "steps": tuple(steps), "total_cpu": None})
    # Only the extern step has figures (captured without CAP_SYS_PTRACE): nothing the job's work did was
    # recorded.
    assert running.cpu_time is None and running.max_rss is None
    indexes = js.parse_gpu_indexes(data("running-scontrol.txt"))
    assert indexes == {"hj-t4-02": [0, 1]}
    gpus = js.parse_smi(data("running-smi.txt"), indexes)
    assert gpus == [
        js.GpuFigure("hj-t4-02", 0, 90.0, 4096.0, 1, 16384.0),
        js.GpuFigure("hj-t4-02", 1, 10.0, 512.0, 1, 16384.0),
    ]
    text = js.report(running, gpus, js.gpu_note(running, gpus))
    assert "RUNNING" in text and "so far" in text and "hj-t4-02 GPU 0: 90 % now, 4.0 GiB used" in text
    assert "hj-t4-02 GPU 1 (10 %) is busy less than 30 % use; use fewer GPUs" in text


def memory_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith("Memory"))


def test_memory_peaks_from_real_sacct_and_sstat():
    """Captured on the simulator with the fix (compute nodes with CAP_SYS_PTRACE): job 7 held ~200 MiB for
    60 s, job 6 held 120 MiB for 6 s, which ended before slurmstepd's first sample (30 s)."""
    jobs = {j.jobid: j for j in js.parse_sacct(data("memory-sacct.txt"))}
    seven, six = jobs["7"], jobs["6"]
    # 7.batch: 208532K; 7.extern and the 0 s srun step 7.0 (jobstats' own nvidia-smi): 0, never sampled.
    assert [s.max_rss for s in seven.steps] == [208532 << 10, 0, 0]
    assert seven.max_rss == 208532 << 10 and seven.mem_requested == 1000 << 20
    line = memory_line(js.report(seven, js.parse_summary(seven.admin_comment)))
    assert "1000.0 MiB" in line and "203.6 MiB peak" in line and line.endswith("20 %")
    # Stored as 0, not empty: a step that ended before its first sample.  No process has an RSS of 0, so
    # it is no figure: the line must not claim a peak of 0 B (0 %).
    assert [s.max_rss for s in six.steps] == [0, 0] and six.max_rss is None
    line = memory_line(js.report(six, js.parse_summary(six.admin_comment)))
    assert "peak not recorded by Slurm" in line and line.endswith("n/a")

    # The same job running, 20 s in: sstat makes slurmstepd sample now, before its first 30 s sample.
    (running,) = js.parse_sacct(data("running-memory-sacct.txt"))
    steps = js.parse_sstat(data("running-memory-sstat.txt"))
    assert [(s.jobid, s.max_rss, s.total_cpu) for s in steps] == [
        ("7.extern", 0, 0.0),
        ("7.batch", 208532 << 10, 0.0),
    ]
    running = js.Job(**{**running.__dict__, "steps": tuple(steps), "total_cpu": None})
    text = js.report(running, [], "")
    assert "so far" in text and memory_line(text).endswith("20 %") and "203.6 MiB peak" in text


@pytest.mark.parametrize(
    ("detail", "smi", "expected"),
    [
        # The job's one GPU is the node's GPU 1: nvidia-smi in the job calls it 0.
        (
            "Nodes=t4-01 CPU_IDs=0 Mem=1000 GRES=gpu:t4:1(IDX:1) ",
            "t4-01, 0, GPU-x, 55, 100, 16384",
            [("t4-01", 1)],
        ),
        (
            "Nodes=n[1-2] CPU_IDs=0-1 Mem=2000 GRES=gpu:a40:2(IDX:0,2) ",
            "n1, 0, GPU-a, 1, 1, 2\nn1, 1, GPU-b, 1, 1, 2\nn2, 1, GPU-c, 1, 1, 2",
            [("n1", 0), ("n1", 2), ("n2", 2)],
        ),
        ("", "t4-01, 0, GPU-x, 55, 100, 16384\n[N/A]\n", [("t4-01", 0)]),
    ],
)
def test_running_gpus_carry_slurms_index(detail, smi, expected):
    gpus = js.parse_smi(smi, js.parse_gpu_indexes(detail))
    assert [(g.node, g.index) for g in gpus] == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("hj-t4-[01-02],a40-01", ["hj-t4-01", "hj-t4-02", "a40-01"]),
        ("n[1,3-4]", ["n1", "n3", "n4"]),
        ("x", ["x"]),
    ],
)
def test_expand_nodes(text, names):
    assert js.expand_nodes(text) == names


def test_prometheus_reply_from_the_real_api():
    values = js.prometheus_vector(data("prometheus-utilization.json"))
    assert values == {("hj-t4-02", "0"): 90.0, ("hj-t4-02", "1"): 10.0}
    figures = js.gpu_figures(values, {("hj-t4-02", "0"): 4096 * 2**20}, {("hj-t4-02", "0"): 3})
    assert figures == [
        js.GpuFigure("hj-t4-02", 0, 90.0, 4096.0, 3),
        js.GpuFigure("hj-t4-02", 1, 10.0, 0.0, 0),
    ]
    assert js.prometheus_vector('{"status":"error","error":"bad"}') == {}
    assert js.prometheus_vector("<html>") == {}


def job(**changes) -> js.Job:
    base = js.Job(
        jobid="7", name="train", user="student1", account="course-ml", partition="gpu", state="COMPLETED",
        exit_code="0:0", start="2026-12-07T02:00:00", end="2026-12-07T03:00:00", elapsed=3600,
        time_limit=7200, cpus=4, total_cpu=4 * 3600 * 0.9, mem_requested=16 << 30, gpus_allocated=1,
        nodes="n1", admin_comment="", steps=(js.Step("7.batch", 12 << 30, None),),
    )  # fmt: skip
    return js.Job(**{**base.__dict__, **changes})


def peak(size: int) -> tuple[js.Step, ...]:
    return (js.Step("7.batch", size, None),)


BUSY_GPU = [js.GpuFigure("n1", 0, 85.0, 9000.0, 240)]
IDLE_GPU = [js.GpuFigure("n1", 0, 4.0, 300.0, 240)]
HALF_IDLE = [*BUSY_GPU, js.GpuFigure("n1", 1, 0.0, 0.0, 240)]
# case, job, its GPU figures, how many hints, what they say
HINTS = [
    ("well sized", job(), BUSY_GPU, 0, []),
    (
        "idle cores",
        job(total_cpu=3600 * 1.2),
        BUSY_GPU,
        1,
        ["CPU: the job kept 30 % of its 4 cores busy (1.2"],
    ),
    ("one core", job(cpus=1, total_cpu=60.0), BUSY_GPU, 0, []),  # nothing to give back
    (
        "unused memory",
        job(steps=peak(2 << 30)),
        BUSY_GPU,
        1,
        ["Memory: the peak was 2.0 GiB, 12 %", "--mem=3G"],
    ),
    ("little unused memory", job(mem_requested=1 << 30, steps=peak(100 << 20)), BUSY_GPU, 0, []),
    (
        "idle GPU",
        job(),
        IDLE_GPU,
        1,
        ["GPU: n1 GPU 0 (4 %) averaged less than 30 % use; check that your code"],
    ),
    ("one of two GPUs idle", job(gpus_allocated=2), HALF_IDLE, 1, ["n1 GPU 1 (0 %)", "use fewer GPUs"]),
    ("all three", job(total_cpu=60.0, steps=peak(1 << 30)), IDLE_GPU, 3, ["CPU:", "Memory:", "GPU:"]),
    ("no figures at all", job(total_cpu=None, steps=()), None, 0, []),
]


@pytest.mark.parametrize(("case", "the_job", "gpus", "count", "needles"), HINTS, ids=[h[0] for h in HINTS])
def test_hints_name_each_over_allocation(case, the_job, gpus, count, needles):
    found = js.hints(the_job, js.efficiency(the_job, gpus))
    assert len(found) == count, found
    for needle in needles:
        assert any(needle in h for h in found), (needle, found)
    text = js.report(the_job, gpus, js.gpu_note(the_job, gpus))
    if found:
        assert 'seed rule 6, "allocate only what you use"' in text
    elif the_job.cpu_time is not None:
        assert "No over-allocation found" in text
    else:
        assert "No over-allocation found" not in text  # nothing measured: no praise either


def test_the_report_of_a_finished_demo_job():
    text = js.report(finished()["8"], js.parse_summary(finished()["8"].admin_comment))
    lines = text.splitlines()
    assert lines[0] == "Job 8 (gputest) of student1, account course-ml, partition gpu"
    assert "COMPLETED, exit code 0, on hj-t4-01" in lines[1]
    assert "00:00:50 of 01:00:00" in lines[2]
    cpu = next(line for line in lines if line.strip().startswith("CPU"))
    assert "1 core " in cpu and "00:00:12 CPU time of 00:00:50" in cpu and cpu.endswith("24 %")
    memory = next(line for line in lines if line.strip().startswith("Memory"))
    assert "1000.0 MiB" in memory and "peak not recorded by Slurm" in memory and memory.endswith("n/a")
    gpu = next(line for line in lines if line.strip().startswith("GPU"))
    assert "hj-t4-01 GPU 0: 48 % average, 2.0 GiB peak" in gpu and gpu.endswith("48 %")


@pytest.mark.parametrize(
    ("comment", "note"),
    [("", "not recorded when the job ended"), ("js1:", "ended before the monitoring's first look")],
)
def test_a_finished_job_without_gpu_figures_says_why(comment, note):
    the_job = job(admin_comment=comment)
    assert note in js.report(
        the_job, js.parse_summary(comment), js.gpu_note(the_job, js.parse_summary(comment))
    )


@pytest.mark.parametrize(
    ("code", "text"), [("0:0", "exit code 0"), ("1:0", "exit code 1"), ("0:9", "killed by signal 9")]
)
def test_exit_text(code, text):
    assert js.exit_text(code) == text


def test_login_lines_from_real_sacct():
    lines = js.recent_lines(js.parse_sacct(data("recent-sacct.txt")), 3)
    assert len(lines) == 4 and "jobstats JOBID" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["9", "8", "7"]  # newest first
    nine = lines[1].split()
    assert nine[1:3] == ["two-gpus", "COMPLETED"] and "GPU  50 %" in lines[1]  # (90 + 10) / 2
    assert all(len(line) <= 80 for line in lines)
    assert js.recent_lines([], 3) == []
    assert js.recent_lines(js.parse_sacct(data("recent-sacct.txt")), 1)[1].split()[0] == "9"


class Slurm:
    """Answers jobstats' commands with captured output; records what it ran."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]):
        self.answers, self.ran = answers, []

    def __call__(self, argv, timeout):
        self.ran.append(list(argv))
        return self.answers.get(argv[0], (1, "", f"{argv[0]}: not expected"))


@pytest.mark.parametrize(
    ("jobid", "answers", "status", "needle"),
    [
        ("abc", {}, js.NO_ID, "is not a job id"),
        ("12;rm", {}, js.NO_ID, "is not a job id"),
        ("99999", {"sacct": (0, "", "")}, js.NOT_FOUND, "belongs to another user (Slurm shows you only"),
        ("8", {"sacct": (1, "", "sacct: error: Problem talking to slurmdbd")}, js.SLURM_FAILED, "Problem"),
        ("8", {"sacct": (124, "", "sacct did not answer within 20 s")}, js.SLURM_FAILED, "did not answer"),
        ("8", {"sacct": (0, data("finished-sacct.txt"), "")}, 0, "48 % average"),
    ],
)  # fmt: skip
def test_job_report_exit_codes(jobid, answers, status, needle):
    got, text = js.job_report(jobid, Slurm(answers), 20.0)
    assert got == status and needle in text


def test_a_running_job_asks_its_own_gpus_with_srun_overlap():
    slurm_ = Slurm(
        {
            "sacct": (0, data("running-sacct.txt"), ""),
            "sstat": (0, data("running-sstat.txt"), ""),
            "scontrol": (0, data("running-scontrol.txt"), ""),
            "srun": (0, data("running-smi.txt"), ""),
        }
    )
    status, text = js.job_report("9", slurm_, 20.0)
    assert status == 0 and "90 % now" in text
    srun = next(argv for argv in slurm_.ran if argv[0] == "srun")
    assert "--jobid=9" in srun and "--overlap" in srun and "--nodes=1" in srun


def test_recent_is_silent_when_slurm_fails():
    assert js.recent("student1", 3, 7, Slurm({"sacct": (124, "", "timeout")}), 2.0) == ""


STARTED = (
    "JobId=9 JobName=two-gpus JobState=COMPLETING StartTime=2026-12-07T02:28:48 EndTime=2026-12-07T02:29:33"
)
NOW = js.parse_start(STARTED) + 45.5  # StartTime is in slurmctld's local time, as is the epilog's clock


def prometheus(reply: str):
    asked = []

    def get(url, timeout):
        asked.append(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["query"][0])
        if reply == "down":
            raise ConnectionRefusedError(111, "Connection refused")
        return reply

    return get, asked


def test_the_epilog_stores_the_jobs_gpu_figures_with_sacctmgr():
    get, asked = prometheus(data("prometheus-utilization.json"))
    slurm_ = Slurm(
        {"scontrol": (0, STARTED, ""), "sacctmgr": (0, " Modified jobs...\n  9 submitted at x\n", "")}
    )
    summary, message = js.epilog({"SLURM_JOB_ID": "9"}, "http://127.0.0.1:9090", 15, slurm_, get, NOW)
    assert summary.startswith("js1:hj-t4-02/0:90.0:") and "hj-t4-02/1:10.0:" in summary
    assert "stored" in message
    assert all('{jobid="9"}' in q for q in asked) and len(asked) == 3
    assert "[75s]" in asked[0]  # the run (45 s) and two scrape intervals
    assert slurm_.ran[-1] == [
        "sacctmgr",
        "-i",
        "modify",
        "job",
        "where",
        "jobid=9",
        "set",
        f"AdminComment={summary}",
    ]


@pytest.mark.parametrize(
    ("env", "reply", "answers", "needle"),
    [
        ({}, "", {}, "not run by slurmctld"),
        ({"SLURM_JOB_ID": "9"}, "", {"scontrol": (0, "JobId=9 StartTime=Unknown", "")}, "never started"),
        ({"SLURM_JOB_ID": "9"}, "down", {"scontrol": (0, STARTED, "")}, "Prometheus did not answer"),
        ({"SLURM_JOB_ID": "9"}, "{}", {"scontrol": (0, STARTED, ""), "sacctmgr": (0, "Nothing modified", "")},
         "did not store"),
    ],
)  # fmt: skip
def test_the_epilog_stores_nothing_when_it_cannot(env, reply, answers, needle):
    get, _ = prometheus(reply)
    summary, message = js.epilog(env, "http://127.0.0.1:9090", 15, Slurm(answers), get, NOW)
    assert summary == "" and needle in message


def test_the_epilog_always_exits_0(monkeypatch):
    def broken(argv, timeout):
        raise RuntimeError("boom")

    monkeypatch.setenv("SLURM_JOB_ID", "9")
    assert js.main(["epilog", "--prometheus", "http://127.0.0.1:1"], run=broken) == 0


# --- the model's side ---------------------------------------------------------------------------------------


def test_the_controller_runs_the_epilog_when_it_is_the_monitoring_host():
    cluster, problems = build_cluster(*with_monitoring({"scrape_interval_s": 15}))
    assert problems == [] and slurm.job_gpu_stats(cluster)
    assert f"EpilogSlurmctld={slurm.JOBSTATS_EPILOG}\n" in slurm.render_slurm_conf(cluster)
    wrapper = render_jobstats_epilog(cluster)
    assert wrapper.startswith("#!/bin/sh\n")
    assert (
        f"{slurm.JOBSTATS_TOOL} epilog --prometheus http://127.0.0.1:9090 --scrape-interval 15\n" in wrapper
    )


@pytest.mark.parametrize("setup", [({"job_gpu_stats": False}, ("ctl",)), ({}, ())])
def test_without_gpu_stats_there_is_no_epilog(setup):
    cluster, problems = build_cluster(*with_monitoring(*setup))
    assert problems == [] and not slurm.job_gpu_stats(cluster)
    assert "EpilogSlurmctld" not in slurm.render_slurm_conf(cluster)
    assert render_jobstats_epilog(cluster).endswith("exit 0\n")


def test_a_monitoring_host_that_is_not_the_controller_is_refused_with_a_fix():
    only(
        problems_of(*with_monitoring({}, ("fe",))),
        "monitoring",
        "fe runs Prometheus but is not the Slurm controller",
        "put the Slurm controller in group monitoring, or set ailab_monitoring.job_gpu_stats: false",
    )
    assert problems_of(*with_monitoring({"job_gpu_stats": False}, ("fe",))) == []


def test_epilog_slurmctld_takes_a_restart_and_is_the_models():
    cluster = build_cluster(*with_monitoring())[0]
    new = slurm.render_slurm_conf(cluster)
    old = new.replace(f"EpilogSlurmctld={slurm.JOBSTATS_EPILOG}\n", "")
    assert slurm.reload_action(old, new) == "restart"
    assert "EpilogSlurmctld" in slurm.MODEL_KEYS


def test_captured_prometheus_reply_is_json():
    assert json.loads(data("prometheus-utilization.json"))["status"] == "success"
