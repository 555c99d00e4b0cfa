#!/usr/bin/python3
"""Ansible module: Slurm accounting (cluster, QOS, accounts, users) from the inventory, idempotently."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field

DOCUMENTATION = r"""
---
module: slurm_accounting
short_description: Make slurmdbd's cluster, QOS, accounts and user associations match the inventory
description:
  - Reads the current state with C(sacctmgr -nP show ...), computes the difference to O(spec) with a pure
    function (M(plan)) and applies it with C(sacctmgr -i). Reports changed only when it ran a command, and
    checks afterwards that nothing is left to do.
  - Only accounts whose Organization is O(organization) are managed (created by this module); other
    accounts (C(root), ones made by hand) and their users are never touched.
  - A user that is no longer in O(spec) is never deleted while it has jobs in the queue. Its associations are
    blocked (MaxSubmitJobs=0: nothing new can be submitted, queued and running jobs finish - at most the
    policy's 12 hours) and removed by a later run once the user has no jobs. With O(removed_users=block)
    they are only blocked, for an operator to delete.
  - A project removed from the inventory loses its account once no association is left in it.
options:
  spec:
    description:
      - The desired state, as rendered by C(ailab_render(groups, 'slurm-accounting.json')):
        C(cluster), C(qos) (list of name/description/max_tres_per_user and optional max_jobs_per_user /
        max_submit_jobs_per_user; a limit left out or empty is unlimited), C(default_qos), C(accounts)
        (list of name/description), C(users) (list of name/account/admin).
    type: dict
    required: true
  organization:
    description: Organization tag of the accounts this module manages.
    type: str
    default: ailab
  removed_users:
    description: C(remove) (block while jobs are queued, delete once idle) or C(block) (block only).
    type: str
    choices: [remove, block]
    default: remove
  sacctmgr:
    description: Path of sacctmgr.
    type: str
    default: sacctmgr
  squeue:
    description: Path of squeue (to see whether a removed user still has jobs).
    type: str
    default: squeue
author: ailab-iac
"""

RETURN = r"""
commands:
  description: The sacctmgr commands run (or, in check mode, that would run).
  type: list
  elements: str
  returned: always
blocked:
  description: Users no longer in the inventory that were kept (blocked) because they have queued jobs.
  type: list
  elements: str
  returned: always
"""

ADMIN_LEVELS = {True: "Administrator", False: "None"}
ADD_USERS_PER_COMMAND = 500  # names per `sacctmgr add user`: well inside the kernel's argument limits
# sacctmgr stores names, descriptions and organizations in lower case: compare them that way.
UNLIMITED = ""  # how sacctmgr -P prints an unset limit


@dataclass(frozen=True)
class Assoc:
    account: str
    user: str  # "" for an account's own association
    qos: frozenset[str]
    default_qos: str
    max_submit: str  # "" = unlimited


@dataclass
class State:
    """What sacctmgr reports for one cluster."""

    clusters: set[str] = field(default_factory=set)
    # name -> {description, max_tres_per_user, max_jobs_per_user, max_submit_jobs_per_user} ("" = unlimited)
    qos: dict[str, dict[str, str]] = field(default_factory=dict)
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {description, organization}
    assocs: list[Assoc] = field(default_factory=list)
    admin_levels: dict[str, str] = field(default_factory=dict)  # user -> AdminLevel
    default_accounts: dict[str, str] = field(default_factory=dict)  # user -> DefaultAccount


def _rows(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = line.split("|")
        rows.append((cells + [""] * width)[:width])
    return rows


def parse_state(clusters: str, qos: str, accounts: str, assocs: str, users: str, cluster: str) -> State:
    """Build the state from the outputs of the ``sacctmgr -nP show`` commands in :data:`QUERIES`."""
    state = State()
    state.clusters = {r[0].strip().lower() for r in _rows(clusters, 1) if r[0].strip()}
    for name, description, max_tres, max_jobs, max_submit in _rows(qos, 5):
        state.qos[name.lower()] = {
            "description": description.lower(),
            "max_tres_per_user": max_tres,
            "max_jobs_per_user": max_jobs.strip(),
            "max_submit_jobs_per_user": max_submit.strip(),
        }
    for name, description, organization in _rows(accounts, 3):
        state.accounts[name.lower()] = {
            "description": description.lower(),
            "organization": organization.lower(),
        }
    for row_cluster, account, user, qos_list, default_qos, max_submit in _rows(assocs, 6):
        if row_cluster.lower() != cluster:
            continue
        state.assocs.append(
            Assoc(
                account=account.lower(),
                user=user,
                qos=frozenset(q for q in qos_list.split(",") if q),
                default_qos=default_qos,
                max_submit=max_submit,
            )
        )
    for name, default_account, admin_level in _rows(users, 3):
        state.admin_levels[name] = admin_level
        state.default_accounts[name] = default_account.lower()
    return state


QUERIES = {
    "clusters": ["show", "cluster", "format=cluster"],
    "qos": ["show", "qos", "format=name,description,maxtrespu,maxjobspu,maxsubmitpu"],
    "accounts": ["show", "account", "format=account,description,organization"],
    "assocs": ["show", "assoc", "format=cluster,account,user,qos,defaultqos,maxsubmit"],
    "users": ["show", "user", "format=user,defaultaccount,adminlevel"],
}


# QOS job-count limits: spec key -> sacctmgr option.  sacctmgr prints an unset one as "".
QOS_COUNTS = {"max_jobs_per_user": "MaxJobsPerUser", "max_submit_jobs_per_user": "MaxSubmitJobsPerUser"}


def _count(value: object) -> str:
    """A spec's job-count limit as sacctmgr prints it: digits, or "" for unlimited (None, "", -1)."""
    if value is None or value == "" or str(value) == "-1":
        return UNLIMITED
    return str(int(value))  # type: ignore[call-overload]


def _same_tres(a: str, b: str) -> bool:
    return sorted(x for x in a.lower().split(",") if x) == sorted(x for x in b.lower().split(",") if x)


@dataclass
class Plan:
    commands: list[list[str]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # removed users kept because they have jobs

    def add(self, *args: str) -> None:
        self.commands.append(list(args))


def plan(
    spec: dict,
    state: State,
    jobs: dict[str, int | None],
    *,
    organization: str = "ailab",
    removed_users: str = "remove",
) -> Plan:
    """The sacctmgr commands (arguments after ``sacctmgr -i``) that turn ``state`` into ``spec``.

    ``jobs`` maps a user no longer in the spec to its number of queued/running jobs (None: unknown, e.g.
    slurmctld is down), which decides between blocking and deleting.
    """
    out = Plan()
    cluster = spec["cluster"].lower()
    default_qos = spec["default_qos"]
    qos_set = frozenset({default_qos})

    if cluster not in state.clusters:
        out.add("add", "cluster", cluster)

    for q in spec["qos"]:
        name = q["name"].lower()
        want = {"Description": q.get("description", ""), "MaxTRESPerUser": q.get("max_tres_per_user", "")}
        counts = {option: _count(q.get(key)) for key, option in QOS_COUNTS.items()}
        have = state.qos.get(name)
        if have is None:
            out.add(
                "add",
                "qos",
                name,
                *(f"{k}={v}" for k, v in want.items() if v),
                *(f"{k}={v}" for k, v in counts.items() if v),
            )
            continue
        changes = []
        if have["description"] != want["Description"].lower():
            changes.append(f"Description={want['Description']}")
        if not _same_tres(have["max_tres_per_user"], want["MaxTRESPerUser"]):
            changes.append(f"MaxTRESPerUser={want['MaxTRESPerUser'] or '-1'}")
        for key, option in QOS_COUNTS.items():
            if have.get(key, UNLIMITED) != counts[option]:
                changes.append(f"{option}={counts[option] or '-1'}")
        if changes:
            out.add("modify", "qos", "where", f"name={name}", "set", *changes)

    desired_accounts = {a["name"].lower(): a for a in spec["accounts"]}
    assoc_by_key = {(a.account, a.user): a for a in state.assocs}
    for name, account in sorted(desired_accounts.items()):
        description = account.get("description") or name
        have = state.accounts.get(name)
        if have is None:
            out.add(
                "add",
                "account",
                name,
                f"Cluster={cluster}",
                f"Description={description}",
                f"Organization={organization}",
                f"QOS={default_qos}",
                f"DefaultQOS={default_qos}",
            )
            continue
        changes = []
        if have["description"] != description.lower():
            changes.append(f"Description={description}")
        if have["organization"] != organization:
            changes.append(f"Organization={organization}")
        if changes:
            out.add("modify", "account", "where", f"name={name}", "set", *changes)
        own = assoc_by_key.get((name, ""))
        if own is None:
            out.add(
                "add",
                "account",
                name,
                f"Cluster={cluster}",
                f"QOS={default_qos}",
                f"DefaultQOS={default_qos}",
            )
        elif own.qos != qos_set or own.default_qos != default_qos:
            out.add(
                "modify",
                "account",
                "where",
                f"name={name}",
                f"cluster={cluster}",
                "set",
                f"QOS={default_qos}",
                f"DefaultQOS={default_qos}",
            )

    desired_users = {u["name"]: u for u in spec["users"]}
    managed = {name for name, a in state.accounts.items() if a["organization"] == organization}
    managed |= set(desired_accounts)
    # New associations go in bulk: one `sacctmgr add user a,b,c ...` per set of options (a first converge
    # of a year's students is a few commands, not one per student), before the modifications below (a
    # user's DefaultAccount must name one of its associations).
    adds: dict[tuple[str, ...], list[str]] = {}
    later = Plan()
    for name, user in sorted(desired_users.items()):
        account = user["account"].lower()
        admin = ADMIN_LEVELS[bool(user.get("admin"))]
        assoc = assoc_by_key.get((account, name))
        known_user = name in state.admin_levels
        if assoc is None:
            args = [
                "add",
                "user",
                name,
                f"Account={account}",
                f"Cluster={cluster}",
                f"QOS={default_qos}",
                f"DefaultQOS={default_qos}",
            ]
            if not known_user:
                args += [f"DefaultAccount={account}", f"AdminLevel={admin}"]
            adds.setdefault(tuple(args[3:]), []).append(name)
        else:
            changes = []
            if assoc.qos != qos_set or assoc.default_qos != default_qos:
                changes += [f"QOS={default_qos}", f"DefaultQOS={default_qos}"]
            if assoc.max_submit != UNLIMITED:  # blocked by an earlier removal: the user is back
                changes.append("MaxSubmitJobs=-1")
            if changes:
                later.add(
                    "modify",
                    "user",
                    "where",
                    f"name={name}",
                    f"account={account}",
                    f"cluster={cluster}",
                    "set",
                    *changes,
                )
        if known_user:
            user_changes = []
            if state.default_accounts.get(name) != account:
                user_changes.append(f"DefaultAccount={account}")
            if state.admin_levels.get(name, "None") != admin:
                user_changes.append(f"AdminLevel={admin}")
            if user_changes:
                later.add("modify", "user", "where", f"name={name}", "set", *user_changes)
    for options, names in adds.items():
        for i in range(0, len(names), ADD_USERS_PER_COMMAND):
            out.add("add", "user", ",".join(names[i : i + ADD_USERS_PER_COMMAND]), *options)
    out.commands += later.commands

    # Associations in managed accounts that the spec does not have (user removed or moved to a new project).
    stale = sorted(
        (
            a
            for a in state.assocs
            if a.user
            and a.user != "root"
            and a.account in managed
            and (a.user not in desired_users or desired_users[a.user]["account"].lower() != a.account)
        ),
        key=lambda a: (a.user, a.account),
    )
    deleted: set[tuple[str, str]] = set()  # (user, account) associations this plan deletes
    # One command per account for all its users to delete or block (the yearly deletion removes thousands;
    # one sacctmgr call each would take slurmdbd most of an hour).
    to_delete: dict[str, list[str]] = {}
    to_block: dict[str, list[str]] = {}
    for a in stale:
        if removed_users == "remove" and jobs.get(a.user) == 0:
            to_delete.setdefault(a.account, []).append(a.user)
            deleted.add((a.user, a.account))
            continue
        if a.user not in out.blocked:
            out.blocked.append(a.user)
        if a.max_submit != "0":
            to_block.setdefault(a.account, []).append(a.user)
    for verb, by_account, tail in (
        ("delete", to_delete, ()),
        ("modify", to_block, ("set", "MaxSubmitJobs=0")),
    ):
        for account, names in sorted(by_account.items()):
            for i in range(0, len(names), ADD_USERS_PER_COMMAND):
                chunk = ",".join(names[i : i + ADD_USERS_PER_COMMAND])
                out.add(
                    verb, "user", "where", f"name={chunk}", f"account={account}", f"cluster={cluster}", *tail
                )

    # Accounts of projects no longer in the inventory go once no user association is left in them.
    for name in sorted(managed - set(desired_accounts)):
        if state.accounts.get(name, {}).get("organization") != organization:
            continue
        left = {
            a.user for a in state.assocs if a.account == name and a.user and (a.user, name) not in deleted
        }
        if not left:
            out.add("delete", "account", "where", f"name={name}", f"cluster={cluster}")
    return out


def count_jobs(users: list[str], squeue_users: str | None) -> dict[str, int | None]:
    """Each of ``users``' jobs in ``squeue -h -o %u`` output (one owner per line); all None when squeue
    could not answer (unknown: such users are only blocked, never deleted)."""
    if squeue_users is None:
        return dict.fromkeys(users)
    owners = Counter(squeue_users.split())
    return {user: owners[user] for user in users}


def stale_users(spec: dict, state: State, organization: str = "ailab") -> list[str]:
    """Users with associations in managed accounts that the spec no longer has there."""
    desired = {u["name"]: u["account"].lower() for u in spec["users"]}
    managed = {n for n, a in state.accounts.items() if a["organization"] == organization}
    managed |= {a["name"].lower() for a in spec["accounts"]}
    return sorted(
        {
            a.user
            for a in state.assocs
            if a.user and a.user != "root" and a.account in managed and desired.get(a.user) != a.account
        }
    )


def main() -> None:  # pragma: no cover - exercised on the simulated cluster
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "spec": {"type": "dict", "required": True},
            "organization": {"type": "str", "default": "ailab"},
            "removed_users": {"type": "str", "default": "remove", "choices": ["remove", "block"]},
            "sacctmgr": {"type": "str", "default": "sacctmgr"},
            "squeue": {"type": "str", "default": "squeue"},
        },
        supports_check_mode=True,
    )
    p = module.params
    spec = p["spec"]
    for key in ("cluster", "qos", "default_qos", "accounts", "users"):
        if key not in spec:
            module.fail_json(
                msg=f"spec has no {key!r}: render it with ailab_render(groups, 'slurm-accounting.json')"
            )
    cluster = spec["cluster"].lower()

    def sacctmgr(args: list[str], *, change: bool = False) -> str:
        cmd = [p["sacctmgr"], *(["-i"] if change else ["-nP"]), *args]
        rc, out, err = module.run_command(cmd)
        if rc != 0 and not (change and "Nothing new added" in out + err):
            module.fail_json(msg=f"{shlex.join(cmd)} failed (exit {rc}): {(err or out).strip()}", cmd=cmd)
        return out

    def read_state() -> State:
        outputs = {name: sacctmgr(args) for name, args in QUERIES.items()}
        return parse_state(cluster=cluster, **outputs)

    def job_counts(users: list[str]) -> dict[str, int | None]:
        if not users:
            return {}
        rc, out, _ = module.run_command([p["squeue"], "-h", "-o", "%u"])  # every queued/running job, once
        return count_jobs(users, out if rc == 0 else None)

    state = read_state()
    todo = plan(
        spec,
        state,
        job_counts(stale_users(spec, state, p["organization"])),
        organization=p["organization"],
        removed_users=p["removed_users"],
    )
    commands = [shlex.join(["sacctmgr", "-i", *c]) for c in todo.commands]
    if module.check_mode or not todo.commands:
        module.exit_json(changed=bool(todo.commands), commands=commands, blocked=todo.blocked)
    for command in todo.commands:
        sacctmgr(command, change=True)
    state = read_state()
    again = plan(
        spec,
        state,
        job_counts(stale_users(spec, state, p["organization"])),
        organization=p["organization"],
        removed_users=p["removed_users"],
    )
    if again.commands:
        module.fail_json(
            msg="sacctmgr did not reach the inventory's state; still to do: "
            + "; ".join(shlex.join(c) for c in again.commands),
            commands=commands,
        )
    module.exit_json(changed=True, commands=commands, blocked=todo.blocked)


if __name__ == "__main__":
    main()
