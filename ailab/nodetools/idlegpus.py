"""Rule 6 for running jobs: one mail to the owner of a job whose GPU stays idle; a cancel where opted in.

Run every minute by ailab-idle-gpus.timer on the monitoring host (role monitoring), as root:

    ailab-idle-gpus --config /etc/ailab/idle-gpus.json [--dry-run]

It asks Prometheus (on loopback) about ``ailab_job_gpu_utilization_percent{jobid,user,node,gpu}``, the
series ailab-exporter keeps for every GPU of every running job.  A GPU has been idle for W minutes when
every sample of the last W minutes is 0 and the samples cover the window (at most one scrape missing): a
job that started a minute ago, or a node whose scrapes failed, is not called idle.

- **mail** (``mail_minutes`` > 0): a running job with a GPU idle for ``mail_minutes`` that was not mailed
  about before: one mail to its owner, naming the idle GPUs.
- **cancel** (``cancel_minutes`` > 0, opt-in): a running job all of whose GPUs have been idle for
  ``cancel_minutes``, mailed about before: ``scancel``, then a mail saying so.

The state file (``state``) records the jobs mailed and cancelled; a job no longer running is forgotten.
What failed (Prometheus, the MTA, scancel) is not recorded, so the next run tries again.  Standard library
only (the node package, ailab/nodepkg.py).

Exit status: 0 done; 1 something failed (said on stderr, retried next run); 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.message
import email.policy
import email.utils
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import textwrap
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

METRIC = "ailab_job_gpu_utilization_percent"
TIMEOUT = 10.0
# Headers stay on one line (RFC 5322 allows 998 characters), as the operations tools' mail does.
MAIL_POLICY = email.policy.default.clone(max_line_length=998)


class ConfigError(Exception):
    """Bad arguments or configuration: main prints it on one line and exits 2."""


@dataclass(frozen=True, order=True)
class Gpu:
    """One GPU of one running job, as ailab-exporter labels it."""

    jobid: str
    user: str
    node: str
    gpu: str


@dataclass(frozen=True)
class Config:
    cluster: str
    prometheus: str  # base URL, e.g. http://127.0.0.1:9090
    scrape_interval_s: int
    mail_minutes: int
    cancel_minutes: int
    smtp: str  # host:port of the MTA that takes the monitoring host's mail
    helo: str
    mail_from: str
    state: str
    users: Mapping[str, str] = field(default_factory=dict)  # user name -> e-mail address
    support_email: str = ""
    scancel: str = "/usr/bin/scancel"


@dataclass(frozen=True)
class Action:
    kind: str  # "mail" or "cancel"
    jobid: str
    user: str
    gpus: tuple[Gpu, ...]  # the idle GPUs the mail names


def least_samples(minutes: int, interval_s: int) -> int:
    """How many samples a window of ``minutes`` must hold to count: all of them but one lost scrape."""
    return max(2, minutes * 60 // interval_s - 1)


def idle(maxima: Mapping[Gpu, float], counts: Mapping[Gpu, float], least: int) -> set[Gpu]:
    """The GPUs whose every sample in the window was 0, with at least ``least`` samples in it."""
    return {g for g, top in maxima.items() if top == 0 and counts.get(g, 0) >= least}


def jobs(gpus: Iterable[Gpu]) -> dict[tuple[str, str], tuple[Gpu, ...]]:
    """(job id, user) -> the job's GPUs, in order."""
    out: dict[tuple[str, str], list[Gpu]] = {}
    for g in sorted(gpus):
        out.setdefault((g.jobid, g.user), []).append(g)
    return {key: tuple(value) for key, value in out.items()}


def plan(
    running: Iterable[Gpu],
    idle_for_mail: set[Gpu],
    idle_for_cancel: set[Gpu],
    state: Mapping[str, Mapping[str, str]],
    cancel: bool,
) -> list[Action]:
    """What to do now, job by job in job-id order: a cancel for a job mailed before whose GPUs are all idle
    for the cancel window (``cancel`` on), else one mail for a job not mailed before with an idle GPU."""
    actions = []
    for (jobid, user), gpus in sorted(jobs(running).items(), key=lambda item: _job_order(item[0][0])):
        seen = state.get(jobid, {})
        if "cancelled" in seen:
            continue
        if cancel and "mailed" in seen and all(g in idle_for_cancel for g in gpus):
            actions.append(Action("cancel", jobid, user, gpus))
        elif "mailed" not in seen:
            unused = tuple(g for g in gpus if g in idle_for_mail)
            if unused:
                actions.append(Action("mail", jobid, user, unused))
    return actions


def _job_order(jobid: str) -> tuple[int, str]:
    head = jobid.split("_", 1)[0]
    return (int(head), jobid) if head.isdigit() else (sys.maxsize, jobid)


def forget_finished(state: Mapping[str, dict[str, str]], running: Iterable[Gpu]) -> dict[str, dict[str, str]]:
    """The state without the jobs that no longer run."""
    now = {g.jobid for g in running}
    return {jobid: dict(seen) for jobid, seen in state.items() if jobid in now}


def _minutes(n: int) -> str:
    return f"{n} minute" if n == 1 else f"{n} minutes"


def _gpu_list(gpus: Iterable[Gpu]) -> str:
    return ", ".join(f"GPU {g.gpu} on {g.node}" for g in gpus)


def compose(config: Config, action: Action, to: str, now: dt.datetime) -> email.message.EmailMessage:
    """The mail for ``action``, to ``to``."""
    rule = "AI-LAB usage rule 6: allocate only the resources you use, and release them when you no longer do."
    if action.kind == "mail":
        subject = f"[{config.cluster}] Job {action.jobid} holds an idle GPU (usage rule 6)"
        paragraphs = [
            f"Hello {action.user},",
            f"your job {action.jobid} has had {_gpu_list(action.gpus)} at 0 % utilisation for the last "
            f"{_minutes(config.mail_minutes)}. {rule} Other students are waiting for GPUs.",
            "If the job no longer needs its GPUs, cancel it:",
            f"  scancel {action.jobid}",
            "and next time ask only for the GPUs your program uses (e.g. --gres=gpu:1).",
        ]
        if config.cancel_minutes:
            paragraphs.append(
                f"A job whose GPUs all stay at 0 % for {_minutes(config.cancel_minutes)} is cancelled."
            )
        paragraphs.append("This is the only mail about this job.")
    else:
        subject = f"[{config.cluster}] Job {action.jobid} cancelled: its GPUs were idle (usage rule 6)"
        paragraphs = [
            f"Hello {action.user},",
            f"your job {action.jobid} was cancelled: {_gpu_list(action.gpus)} had been at 0 % utilisation "
            f"for {_minutes(config.cancel_minutes)}. {rule}",
            "Its output files are where the job wrote them. Before you submit it again, check that your "
            "program uses the GPU (e.g. nvidia-smi in the job, or torch.cuda.is_available()).",
        ]
    if config.support_email:
        paragraphs.append(f"Questions: {config.support_email}")
    body = "\n\n".join(p if p.startswith("  ") else textwrap.fill(p, 76) for p in paragraphs) + "\n"
    msg = email.message.EmailMessage(policy=MAIL_POLICY)
    msg["From"] = config.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid(domain=config.mail_from.rpartition("@")[2].strip(">") or None)
    msg["X-Ailab-Notice"] = f"idle-gpu-{action.kind} {action.jobid}"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg


# Input and output -------------------------------------------------------------------------------------


def parse_config(data: object, source: str) -> Config:
    """The JSON document role monitoring renders (ailab.monitoring.idle_gpus_config), checked."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a JSON object")

    def need(key: str, kind: type, minimum: int | None = None):
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{source}: {key!r} must be a {kind.__name__} -- fix: re-run the converge")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{source}: {key!r} is {value}, below {minimum} -- fix: re-run the converge")
        return value

    users = need("users", dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise ConfigError(f"{source}: 'users' must map user names to addresses -- fix: re-run the converge")
    host, _, port = need("smtp", str).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{source}: 'smtp' must be host:port -- fix: re-run the converge")
    return Config(
        cluster=need("cluster", str),
        prometheus=need("prometheus", str).rstrip("/"),
        scrape_interval_s=need("scrape_interval_s", int, 1),
        mail_minutes=need("mail_minutes", int, 0),
        cancel_minutes=need("cancel_minutes", int, 0),
        smtp=need("smtp", str),
        helo=need("helo", str),
        mail_from=need("mail_from", str),
        state=need("state", str),
        users=users,
        support_email=data.get("support_email") or "",
        scancel=data.get("scancel") or "/usr/bin/scancel",
    )


Query = Callable[[str], list[dict]]


def prometheus_query(base: str, timeout: float = TIMEOUT) -> Query:
    def query(expr: str) -> list[dict]:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=timeout) as response:
            reply = json.load(response)
        if reply.get("status") != "success":
            raise ValueError(f"Prometheus refused {expr!r}: {reply.get('error', reply)}")
        return reply["data"]["result"]

    return query


def series(result: Iterable[Mapping]) -> dict[Gpu, float]:
    """An instant vector of the job GPU metric, by GPU (series without the four labels are skipped)."""
    out = {}
    for item in result:
        m = item.get("metric", {})
        if all(m.get(k) for k in ("jobid", "user", "node", "gpu")):
            out[Gpu(m["jobid"], m["user"], m["node"], m["gpu"])] = float(item["value"][1])
    return out


def idle_for(query: Query, minutes: int, interval_s: int) -> set[Gpu]:
    """The GPUs idle for the last ``minutes`` (none when ``minutes`` is 0: that check is off)."""
    if not minutes:
        return set()
    maxima = series(query(f"max_over_time({METRIC}[{minutes}m])"))
    counts = series(query(f"count_over_time({METRIC}[{minutes}m])"))
    return idle(maxima, counts, least_samples(minutes, interval_s))


def load_state(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"state file {path}: {e} -- fix: move it aside (its jobs may be mailed again)"
        ) from e
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"state file {path}: not a map of job ids -- fix: move it aside")
    return data


def save_state(path: Path, state: Mapping[str, Mapping[str, str]]) -> None:
    """Replace ``path`` atomically (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def send_smtp(config: Config, msg: email.message.EmailMessage) -> None:
    host, _, port = config.smtp.rpartition(":")
    with smtplib.SMTP(host, int(port), local_hostname=config.helo, timeout=TIMEOUT * 3) as smtp:
        smtp.send_message(msg)


def scancel(config: Config, jobid: str) -> None:
    result = subprocess.run(
        [config.scancel, jobid], capture_output=True, text=True, timeout=TIMEOUT * 3, check=False
    )
    # A job that ended in the meantime is as good as cancelled.
    if result.returncode != 0 and "already completing or completed" not in result.stderr.lower():
        raise OSError(f"scancel {jobid} exited {result.returncode}: {result.stderr.strip()}")


def run(
    config: Config,
    query: Query,
    send: Callable[[email.message.EmailMessage], None],
    cancel_job: Callable[[str], None],
    now: dt.datetime,
    dry_run: bool = False,
    out=sys.stdout,
) -> int:
    state_path = Path(config.state)
    running = series(query(METRIC))
    idle_mail = idle_for(query, config.mail_minutes, config.scrape_interval_s)
    idle_cancel = idle_for(query, config.cancel_minutes, config.scrape_interval_s)
    state = forget_finished(load_state(state_path), running)
    failed = 0
    for action in plan(running, idle_mail, idle_cancel, state, bool(config.cancel_minutes)):
        to = config.users.get(action.user)
        what = f"job {action.jobid} of {action.user}: {action.kind} ({_gpu_list(action.gpus)} idle)"
        if dry_run:
            print(f"would {what}", file=out)
            continue
        try:
            if action.kind == "cancel":
                cancel_job(action.jobid)
            if to:
                send(compose(config, action, to, now))
            else:
                print(f"ailab-idle-gpus: {action.user} has no address in the configuration", file=sys.stderr)
        except (OSError, smtplib.SMTPException, subprocess.SubprocessError) as e:
            failed += 1
            print(f"ailab-idle-gpus: {what} failed: {e}", file=sys.stderr)
            continue
        stamp = now.isoformat(timespec="seconds")
        state.setdefault(action.jobid, {})["mailed" if action.kind == "mail" else "cancelled"] = stamp
        print(what, file=out)
    if not dry_run:
        save_state(state_path, state)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/ailab/idle-gpus.json")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    args = parser.parse_args(argv)
    try:
        try:
            with open(args.config) as handle:
                data = json.load(handle)
        except (OSError, ValueError) as e:
            raise ConfigError(f"--config: cannot read {args.config}: {e}") from None
        config = parse_config(data, args.config)
        if not (config.mail_minutes or config.cancel_minutes):
            return 0  # the policy turned both off
        query = prometheus_query(config.prometheus)
        return run(
            config,
            query,
            lambda msg: send_smtp(config, msg),
            lambda jobid: scancel(config, jobid),
            dt.datetime.now().astimezone(),
            dry_run=args.dry_run,
        )
    except ConfigError as e:
        print(f"ailab-idle-gpus: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as e:
        print(f"ailab-idle-gpus: cannot ask Prometheus: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
