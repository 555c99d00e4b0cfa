"""The model is built once per distinct input (ailab/ansible_bridge.py built_from_play), and a change of
any variable it is built from builds it anew: plain dicts (the tests), Ansible's HostVars, forked workers."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from ailab import ansible_bridge, filter_bench, render
from ailab.ansible_bridge import cluster_from_play, render_from_play
from ailab.filters import uses_model, warm
from ailab.inventory import load_cluster, read_inventory
from tests.unit.test_model_validation import good

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_memo():
    ansible_bridge.forget()
    yield
    ansible_bridge.forget()


def test_the_same_input_is_built_once():
    groups, raw = good()
    first = cluster_from_play(raw, groups)
    assert cluster_from_play(copy.deepcopy(raw), groups) is first
    assert ansible_bridge.stats == {"state": 0, "input": 1, "built": 1}


def test_a_variable_changed_in_place_builds_the_model_anew():
    groups, raw = good()
    before = cluster_from_play(raw, groups)
    for hv in raw.values():
        hv["ailab_policy"] = {**hv["ailab_policy"], "max_gpus_per_user": 3}
    raw["t4-01"]["ailab_address"] = "10.0.0.99"
    after = cluster_from_play(raw, groups)
    assert after.policy.max_gpus_per_user == 3 != before.policy.max_gpus_per_user
    assert after.hosts["t4-01"].address == "10.0.0.99" != before.hosts["t4-01"].address


def test_a_host_moved_to_another_group_builds_the_model_anew():
    groups, raw = good()
    before = cluster_from_play(raw, groups)
    moved = {g: [h for h in m if h != "t4-01"] if g == "compute_t4" else m for g, m in groups.items()}
    moved["compute_a40"] = [*groups["compute_a40"], "t4-01"]
    raw["t4-01"]["ailab_hardware"] = raw[groups["compute_a40"][0]]["ailab_hardware"]
    after = cluster_from_play(raw, moved)
    assert "t4-01" in after.node_classes["compute_a40"].hosts
    assert "t4-01" not in before.node_classes["compute_a40"].hosts


@pytest.mark.parametrize("order", [("sim", "production", "sim"), ("production", "sim", "production")])
def test_inventories_in_turn_each_give_their_own_model(order):
    for name in order:
        groups, hostvars = read_inventory(ROOT / "inventory" / name)
        assert cluster_from_play(hostvars, groups) == load_cluster(ROOT / "inventory" / name)[0]
    assert ansible_bridge.stats["built"] == 2


def test_a_bad_model_stops_every_render_not_only_the_first():
    groups, raw = good()
    for hv in raw.values():
        hv["ailab_policy"] = {**hv["ailab_policy"], "max_job_time": "0"}
    for _ in range(2):
        with pytest.raises(ValueError, match="max_job_time"):
            render_from_play(raw, groups, "slurm.conf")


def test_only_the_per_host_files_depend_on_the_host():
    cluster, _ = load_cluster(ROOT / "inventory" / "sim")
    compute = [h.name for h in cluster.compute]
    for name in render.RENDERERS:
        if name in render.PER_HOST:
            assert len({render.render(name, cluster, h) for h in compute}) > 1, name
        else:
            texts = {render.render(name, cluster, h) for h in cluster.hosts}
            assert texts == {render.render(name, cluster, None)}, name


def test_a_file_the_same_for_every_host_is_rendered_once(monkeypatch):
    groups, raw = good()
    calls = []
    real = render.render
    monkeypatch.setattr(
        render, "render", lambda name, c, host=None: calls.append((name, host)) or real(name, c, host)
    )
    compute = groups["compute"]
    slurm_conf = {render_from_play(raw, groups, "slurm.conf", h) for h in compute}
    gres = {h: render_from_play(raw, groups, "gres.conf", h) for h in compute}
    assert calls.count(("slurm.conf", None)) == 1 and len(slurm_conf) == 1
    assert [c for c in calls if c[0] == "gres.conf"] == [("gres.conf", h) for h in compute]
    assert gres == {h: real("gres.conf", cluster_from_play(raw, groups), h) for h in compute}


@pytest.fixture
def play(tmp_path):
    """hostvars/groups as a play sees them (Ansible's HostVars), with facts and registered results."""
    state = filter_bench.load_play_state(filter_bench.scratch_inventory(2, tmp_path / "inv"))
    real = state.variables.get_vars
    state.reads = []

    def counting(*args, **kwargs):
        state.reads.append(kwargs.get("host"))
        return real(*args, **kwargs)

    state.variables.get_vars = counting
    return state


def test_unchanged_ansible_variables_find_the_model_without_templating_any(play):
    first = cluster_from_play(play.hostvars, play.groups)
    assert play.reads  # the first build reads the hosts' variables
    play.reads.clear()
    assert cluster_from_play(play.hostvars, play.groups) is first
    assert play.reads == [] and ansible_bridge.stats["state"] == 1


def test_a_registered_result_reads_the_variables_again_but_builds_nothing(play):
    first = cluster_from_play(play.hostvars, play.groups)
    host = play.groups["compute"][0]
    play.variables.set_nonpersistent_facts(host, {"some_result": {"rc": 0}})
    play.reads.clear()
    assert cluster_from_play(play.hostvars, play.groups) is first
    assert play.reads and ansible_bridge.stats == {"state": 0, "input": 1, "built": 1}


@pytest.mark.parametrize("how", ["set_fact", "include_vars", "add_host", "fact"])
def test_a_model_variable_changed_during_the_run_is_seen(play, how):
    host = play.groups["compute"][0]
    before = cluster_from_play(play.hostvars, play.groups)
    new = "10.214.0.200"
    if how == "set_fact":
        play.variables.set_nonpersistent_facts(host, {"ailab_address": new})
    elif how == "include_vars":
        play.variables.set_host_variable(host, "ailab_address", new)
    elif how == "add_host":
        play.variables._inventory.get_host(host).set_variable("ailab_address", new)
    else:  # set_fact cacheable=true
        play.variables.set_host_facts(host, {"ailab_address": new})
    after = cluster_from_play(play.hostvars, play.groups)
    assert before.hosts[host].address != new
    assert after.hosts[host].address == new
    assert render_from_play(play.hostvars, play.groups, "hosts").count(new) == 1


def test_a_cluster_wide_variable_changed_during_the_run_is_seen(play):
    before = cluster_from_play(play.hostvars, play.groups)
    play.variables._extra_vars = {**play.variables._extra_vars, "accounts_admin_group": "ops"}
    assert before.accounts.admin_group != "ops"
    assert cluster_from_play(play.hostvars, play.groups).accounts.admin_group == "ops"


def test_a_worker_forked_after_the_warm_up_finds_the_model_unchanged(play):
    warm(play.hostvars, play.groups)  # the callback, in the controller
    expected = render_from_play(play.hostvars, play.groups, "slurm.conf")
    state_hits = ansible_bridge.stats["state"]
    play.reads.clear()

    def worker():
        assert render_from_play(play.hostvars, play.groups, "slurm.conf") == expected
        assert play.reads == [] and ansible_bridge.stats["state"] == state_hits + 1

    filter_bench.in_worker(worker)  # raises if an assertion failed in the child


def load_callback():
    path = ROOT / "plugins" / "callback" / "ailab_model.py"
    spec = importlib.util.spec_from_file_location("_ailab_model_callback", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CallbackModule()


def task(variables, args, role_params=None):
    role = SimpleNamespace(_role_params=role_params or {})
    return SimpleNamespace(
        args=args, vars={}, loop=None, when=[], _role=role, get_variable_manager=lambda: variables
    )


def test_the_callback_builds_the_model_for_the_tasks_that_use_it(play):
    callback = load_callback()
    callback.v2_playbook_on_task_start(task(play.variables, {"msg": "{{ inventory_hostname }}"}), False)
    assert ansible_bridge.stats["built"] == 0
    uses = task(play.variables, {"content": "{{ hostvars | ailab_render(groups, 'hosts') }}"})
    callback.v2_playbook_on_task_start(uses, False)
    assert ansible_bridge.stats["built"] == 1
    banner = task(
        play.variables,
        {"content": "{{ sshd_banner }}"},
        {"sshd_banner": "{{ hostvars | ailab_render(groups, 'banner') }}"},
    )
    callback.v2_playbook_on_handler_task_start(banner)
    assert ansible_bridge.stats["state"] == 1


def test_the_callback_never_fails_a_run(play):
    broken = task(SimpleNamespace(), {"content": "{{ hostvars | ailab_model(groups) }}"})
    load_callback().v2_playbook_on_task_start(broken, False)  # no _hostvars, no _inventory: nothing


def test_model_filter_calls_are_found_in_nested_task_data():
    assert uses_model({"dirs": ["x", {"y": "{{ hostvars | ailab_home_dirs(groups) }}"}]})
    assert uses_model(None, [], "{{ hostvars | ailab_ops_config(groups) }}")
    assert not uses_model({"msg": "{{ ailab_cluster.name }}"}, ["ailab_address"], None)


def test_the_callback_builds_the_model_for_roles_that_bind_it_in_their_vars(play):
    """A role binds the model part it reads once in vars/main.yml (e.g. cephfs_client_ceph) or defaults; its
    tasks name only that variable, so the callback looks at the role's vars and defaults too."""
    callback = load_callback()
    role = SimpleNamespace(
        _role_params={},
        _role_vars={"cephfs_client_ceph": "{{ hostvars | ailab_model(groups, 'ceph') }}"},
        _default_vars={"cephfs_client_name": "ailab-node"},
    )
    uses = SimpleNamespace(
        args={"msg": "{{ cephfs_client_ceph.managed }}"},
        vars={},
        loop=None,
        when=[],
        _role=role,
        get_variable_manager=lambda: play.variables,
    )
    callback.v2_playbook_on_task_start(uses, False)
    assert ansible_bridge.stats["built"] == 1
    plain = SimpleNamespace(**{**vars(uses), "_role": SimpleNamespace(_default_vars={"x": "{{ 1 }}"})})
    callback.v2_playbook_on_task_start(plain, False)
    assert ansible_bridge.stats["built"] + ansible_bridge.stats["state"] == 1
