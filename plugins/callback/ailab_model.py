"""Builds the cluster model in the controller at the start of each task that uses it, so the task's
workers (one process forked per host) inherit it instead of each building it from every host's variables.

Enabled in ansible.cfg (callbacks_enabled).  Without it everything works the same, only slower: each
worker builds the model itself (ailab/ansible_bridge.py memoizes per process).  It never fails a run: if
the model cannot be built here, the workers' filter calls report why.
"""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

DOCUMENTATION = """
    name: ailab_model
    type: aggregate
    short_description: builds the ailab cluster model once in the controller for the tasks that use it
    description:
      - At the start of a task whose args, vars, loop, conditions, role parameters, role vars or role
        defaults call a model filter (ailab_render, ailab_model, ailab_home_dirs, ailab_ops_config, ...),
        builds the model from hostvars in the controller process, so that every forked worker finds it
        instead of building it.
    requirements:
      - the ailab package importable by Ansible's Python (the project venv)
"""

display = Display()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ailab_model"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._warm(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._warm(task)

    def _warm(self, task):
        try:
            from ailab.filters import uses_model, warm
        except ImportError:
            return  # the filter plugin says why, if a task uses it
        try:
            role = getattr(task, "_role", None)
            # The role's parameters, vars/main.yml and defaults: a role binds the model's parts it reads
            # there once (e.g. cephfs_client_ceph), and its tasks use them by name.
            keys = ("_role_params", "_role_vars", "_default_vars")
            role_data = [getattr(role, key, None) or {} for key in keys]
            if not uses_model(task.args, task.vars, task.loop, task.when, role_data):
                return
            variables = task.get_variable_manager()
            hostvars = getattr(variables, "_hostvars", None)
            if hostvars is None:
                return
            warm(hostvars, variables._inventory.get_groups_dict())
        except Exception as exc:  # an optimisation must never fail the run
            display.vvv(f"ailab_model: not built in the controller: {exc!r}")
