"""Filters for the Ceph roles (ceph_cluster, cephfs_client, user_dirs); the logic is in ailab/ceph.py.

{{ '/ceph/home' | ailab_mount_unit }}                       ceph-home.mount
{{ 'cephfs' | ailab_ceph_caps(['/home'], ['/datasets']) }}  caps like `ceph fs authorize`
{{ caps | ailab_ceph_caps_args }}                           [mds, '...', mon, '...', osd, '...']
{{ n_osd_hosts | ailab_ceph_pool_size(0) }}                 {size: 1, min_size: 1}
{{ groups['ceph'] | ailab_ceph_mon_hosts(3) }}              the monitor hosts
{{ hostvars | ailab_home_dirs(groups, '/home', '0700') }}   one entry per inventory user
{{ mon_dump_json | ailab_ceph_mon_addresses }}              mon_host entries
{{ mounts | ailab_cephfs_check_config(...) }}               settings of the mount watchdog
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from ailab import ansible_bridge, ceph
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "the ailab Python package is not importable by Ansible: run Ansible from the project venv"
    ) from exc


def _wrap(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise AnsibleFilterError(f"{func.__name__}: {exc}") from exc

    run.__name__ = func.__name__
    return run


def ailab_mount_unit(path):
    return ceph.mount_unit_name(str(path))


def ailab_ceph_caps(fs_name, rw_paths=(), r_paths=(), p=False):
    return ceph.client_caps(str(fs_name), [str(x) for x in rw_paths], [str(x) for x in r_paths], p=bool(p))


def ailab_ceph_caps_args(caps):
    return ceph.caps_args({str(k): str(v) for k, v in caps.items()})


def ailab_ceph_caps_differ(current, wanted):
    return ceph.caps_differ(current or {}, {str(k): str(v) for k, v in wanted.items()})


def ailab_ceph_pool_size(osd_hosts, requested=0):
    return ceph.pool_size(int(osd_hosts), int(requested or 0))


def ailab_ceph_mon_hosts(ceph_hosts, count=3):
    return ceph.mon_hosts([str(h) for h in ceph_hosts], int(count))


def ailab_ceph_client_name(name):
    return ceph.check_client_name(str(name))


def ailab_home_dirs(hostvars, groups, fs_home_dir="/home", mode="0700"):
    try:
        cluster = ansible_bridge.cluster_from_play(hostvars, groups)
    except ValueError as exc:
        raise AnsibleFilterError(f"the inventory has problems:\n{exc}") from exc
    return ceph.home_dirs(cluster, str(fs_home_dir), str(mode))


def ailab_ceph_mon_addresses(mon_dump):
    return ceph.mon_addresses(mon_dump)


def _seconds(value):
    """A whole number of seconds as the inventory gave it; digit strings (from -e key=value) count too."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def ailab_cephfs_check_config(
    mounts, client_name, fs_name, client, interval, probe_timeout, hung_grace, slurmd
):
    return ceph.mount_check_config(
        list(mounts),
        client_name=str(client_name),
        fs_name=str(fs_name),
        client=str(client),
        interval=_seconds(interval),
        probe_timeout=_seconds(probe_timeout),
        hung_grace=_seconds(hung_grace),
        slurmd=bool(slurmd),
    )


class FilterModule:
    def filters(self):
        return {
            f.__name__: _wrap(f)
            for f in (
                ailab_mount_unit,
                ailab_ceph_caps,
                ailab_ceph_caps_args,
                ailab_ceph_caps_differ,
                ailab_ceph_pool_size,
                ailab_ceph_mon_hosts,
                ailab_ceph_client_name,
                ailab_home_dirs,
                ailab_ceph_mon_addresses,
                ailab_cephfs_check_config,
            )
        }
