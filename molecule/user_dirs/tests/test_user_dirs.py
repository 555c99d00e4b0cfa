"""Role user_dirs: the homes and their quotas on CephFS, made on the admin host through libcephfs."""

from __future__ import annotations

import json
import shlex

testinfra_hosts = ["stor01"]

# What the role made, read back through libcephfs with the admin identity the role set up.
READ = """
import cephfs, json, sys
fs = cephfs.LibCephFS(conffile="/etc/ceph/ailab-admin.conf", auth_id="ailab-admin")
fs.conf_set("keyring", "/etc/ceph/ceph.client.ailab-admin.keyring")
fs.mount(filesystem_name=sys.argv[1].encode())
out = {}
for name in sys.argv[2:]:
    st = fs.stat(f"/home/{name}".encode())
    quota = int(fs.getxattr(f"/home/{name}".encode(), "ceph.quota.max_bytes").decode() or 0)
    out[name] = [st.st_uid, st.st_gid, st.st_mode & 0o7777, quota]
fs.shutdown()
print(json.dumps(out))
"""


def test_every_user_has_a_home_with_owner_mode_and_quota(host, cluster):
    names = sorted(cluster.users)
    script = host.run(shlex.join(["python3", "-c", READ, cluster.ceph.fs_name, *names]))
    assert script.rc == 0, script.stderr
    homes = json.loads(script.stdout)
    for name in names:
        user = cluster.users[name]
        uid, gid, mode, quota = homes[name]
        assert (uid, gid) == (user.uid, user.gid), name
        assert mode & 0o077 == 0, f"{name}: home mode {mode:o} lets others in"
        assert quota == cluster.quota_gb(user) * 1024**3, name
