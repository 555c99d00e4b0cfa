"""ailab: the typed model of an AI-LAB-style student GPU cluster and the tools around it.

Which module holds what (the README's layout table has the rest of the repository):

- The description.  :mod:`ailab.inventory` loads an inventory through Ansible's own API;
  :mod:`ailab.parse` turns its variables into the typed model of :mod:`ailab.model`, applying every default
  (the only place defaults live: roles read the model, not the raw variables); :mod:`ailab.validate`
  checks it (the same checks for ``ailab inventory check`` and site.yml's pre-flight play), each problem a
  :class:`ailab.problems.Problem` naming the field and the fix.  :mod:`ailab.gpus`, :mod:`ailab.hostlist`,
  :mod:`ailab.slurm_keys` and :mod:`ailab.sshkeys` are the reference tables and syntaxes they use.
- Ansible's view.  :mod:`ailab.ansible_bridge` builds the model from a play's ``hostvars`` once per
  variable state (memoized; plugins/callback/ailab_model.py builds it in the controller before the
  workers fork); :mod:`ailab.filters` is every Jinja filter (plugins/filter/ailab.py hands them over).
  Roles bind the model parts they read once, in their ``vars/main.yml``:
  ``cephfs_client_ceph: "{{ hostvars | ailab_model(groups, 'ceph') }}"``.
- Files rendered from the model, by pure functions listed in :mod:`ailab.render`: :mod:`ailab.slurm`
  (slurm.conf and friends; Slurm's paths, ports and database name as constants, ``ailab_layout`` for the
  roles; job_submit.lua is ``templates/job_submit.lua``), :mod:`ailab.monitoring`, :mod:`ailab.frontend`,
  :mod:`ailab.containers`, :mod:`ailab.directory`, :mod:`ailab.backup` (``config_data``), :mod:`ailab.ceph`.
- Operations (rules 1 and 8), on the front-end: :mod:`ailab.retention` decides the yearly deletion
  (schedule, plan, state, order) and :mod:`ailab.deletion` carries it out on the system (home file system,
  homes and manifest, accounts, Slurm, the denied-users list); :mod:`ailab.maintenance` the maintenance
  windows (:mod:`ailab.reservations` reads Slurm's MAINT reservations, shared with the login message);
  :mod:`ailab.notices` picks the notice due; their runtime is :mod:`ailab.runtime` (ToolError,
  ``run_command``, ``tool_main``, atomic state files), their mail :mod:`ailab.mail`, their configuration
  :mod:`ailab.opsconfig` (ops.json).  :mod:`ailab.backup` is ``ailab-backup``.  :mod:`ailab.operations`
  is their controller side (``ailab maintenance ...`` through Ansible, ``ailab retention ...``).
- The node package, :mod:`ailab.nodepkg`: every program that runs on a node (its ``COMMANDS``) with the
  modules they import, standard library only, as one archive role common installs
  (:mod:`ailab.nodeinstall` is the archive's installer).  :mod:`ailab.nodetools` holds the programs that
  run only on nodes (login message, status page, jobstats, containers, exporter, idle GPUs, CephFS
  watchdog, GPU health check); :mod:`ailab.mounts` reads the mount table for the tools that must not touch
  a hanging mount.
- The command line: :mod:`ailab.cli` dispatches the sub-commands :mod:`ailab.registry` lists
  (:mod:`ailab.onboarding`, :mod:`ailab.stack_inventory`, :mod:`ailab.operations`, :mod:`ailab.demo`, the
  simulator's ``ailab sim``);
  :mod:`ailab.playbook` runs ansible-playbook and reads what it did from the event callback
  (plugins/callback/ailab_events.py).
- Measuring and documenting: :mod:`ailab.bench`, :mod:`ailab.filter_bench`, :mod:`ailab.monitoring_bench`,
  :mod:`ailab.docs`.
"""

__version__ = "0.1.0"
