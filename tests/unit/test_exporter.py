"""ailab/nodetools/exporter.py: its parsers, table-driven on output captured from the simulated cluster
(Slurm 22.05.8, the nvidia-smi stand-in), and its collectors end to end with a fake command runner."""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ailab.nodetools import exporter as ex

# Captured from the simulator (`docker exec ...`) while jobs 59 (student1, 1 GPU on t4-01), 60 (student2,
# 2 GPUs on t4-02) and 61 (pending: over the per-user GPU limit) were in the queue.  Long lines are split
# only for the line length; the text is unchanged.

# docker exec ailab-t4-01 nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total
#   --format=csv,noheader,nounits
SMI_IDLE = (
    "0, GPU-d6a6c3bd-e3fb-5393-8a71-6cefbb3033de, Tesla T4, 0, 0, 16384\n"
    "1, GPU-ec5aac1d-6d2e-544f-b995-64ef8584728a, Tesla T4, 0, 0, 16384\n"
)
# ... with a load on GPU 0 (85 2048) and, second, GPU 1 failed: exit status 15 and this on stderr.
SMI_LOADED = (
    "0, GPU-d6a6c3bd-e3fb-5393-8a71-6cefbb3033de, Tesla T4, 85, 2048, 16384\n"
    "1, GPU-ec5aac1d-6d2e-544f-b995-64ef8584728a, Tesla T4, 0, 0, 16384\n"
)
SMI_GPU1_FAILED = "0, GPU-d6a6c3bd-e3fb-5393-8a71-6cefbb3033de, Tesla T4, 85, 2048, 16384\n"
SMI_GPU1_FAILED_ERR = "Unable to determine the device handle for GPU 00000000:3B:00.0: Unknown Error\n"
UUID0 = "GPU-d6a6c3bd-e3fb-5393-8a71-6cefbb3033de"
UUID1 = "GPU-ec5aac1d-6d2e-544f-b995-64ef8584728a"

# docker exec ailab-t4-01 squeue -h -w t4-01 -t RUNNING -o '%A|%u'
SQUEUE_T4_01 = "59|student1\n"
# docker exec ailab-ctl01 squeue -h -a -t PENDING,RUNNING -o '%P|%T|%r'
SQUEUE_JOBS = "gpu|PENDING|QOSMaxGRESPerUser\nt4|RUNNING|None\nt4|RUNNING|None\n"
# docker exec ailab-ctl01 scontrol ping
PING_UP = "Slurmctld(primary) at ctl01 is UP\n"

# docker exec ailab-ctl01 scontrol -d -o show job 59 (60, 61); node t4-01 prints the same.
JOB_59_T4_01 = (
    "JobId=59 JobName=wrap UserId=student1(200001) GroupId=student1(200001) MCS_label=N/A Priority=2025 "
    "Nice=0 Account=course-ml QOS=ailab JobState=RUNNING Reason=None Dependency=(null) Requeue=1 "
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 DerivedExitCode=0:0 RunTime=00:00:09 "
    "TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-12-04T04:06:07 EligibleTime=2026-12-04T04:06:07 "
    "AccrueTime=2026-12-04T04:06:07 StartTime=2026-12-04T04:06:07 EndTime=2026-12-04T04:11:07 "
    "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-04T04:06:07 Scheduler=Backfill "
    "Partition=t4 AllocNode:Sid=fe01:1086 ReqNodeList=(null) ExcNodeList=(null) NodeList=t4-01 "
    "BatchHost=t4-01 NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=1,mem=1000M,node=1,billing=1,gres/gpu=1,gres/gpu:t4=1 Socks/Node=* "
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* JOB_GRES=gpu:t4:1   Nodes=t4-01 CPU_IDs=0 Mem=1000 "
    "GRES=gpu:t4:1(IDX:0) MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) "
    "WorkDir=/ceph/home/student1 StdErr=/ceph/home/student1/slurm-59.out StdIn=/dev/null "
    "StdOut=/ceph/home/student1/slurm-59.out Power= CpusPerTres=gpu:1 MemPerTres=gpu:1000 "
    "TresPerNode=gres:gpu:1 \n"
)

JOB_60_T4_02 = (
    "JobId=60 JobName=wrap UserId=student2(200002) GroupId=student2(200002) MCS_label=N/A Priority=4025 "
    "Nice=0 Account=course-ml QOS=ailab JobState=RUNNING Reason=None Dependency=(null) Requeue=1 "
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 DerivedExitCode=0:0 RunTime=00:00:06 "
    "TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-12-04T04:06:07 EligibleTime=2026-12-04T04:06:07 "
    "AccrueTime=2026-12-04T04:06:07 StartTime=2026-12-04T04:06:10 EndTime=2026-12-04T04:11:10 "
    "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-04T04:06:10 Scheduler=Main "
    "Partition=t4 AllocNode:Sid=fe01:1102 ReqNodeList=(null) ExcNodeList=(null) NodeList=t4-02 "
    "BatchHost=t4-02 NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=2,mem=2000M,node=1,billing=2,gres/gpu=2,gres/gpu:t4=2 Socks/Node=* "
    "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* JOB_GRES=gpu:t4:2   Nodes=t4-02 CPU_IDs=0-1 Mem=2000 "
    "GRES=gpu:t4:2(IDX:0-1) MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) "
    "WorkDir=/ceph/home/student2 StdErr=/ceph/home/student2/slurm-60.out StdIn=/dev/null "
    "StdOut=/ceph/home/student2/slurm-60.out Power= CpusPerTres=gpu:1 MemPerTres=gpu:1000 "
    "TresPerNode=gres:gpu:2 \n"
)

JOB_61_PENDING = (
    "JobId=61 JobName=wrap UserId=student1(200001) GroupId=student1(200001) MCS_label=N/A Priority=2025 "
    "Nice=0 Account=course-ml QOS=ailab JobState=PENDING Reason=QOSMaxGRESPerUser Dependency=(null) "
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 DerivedExitCode=0:0 RunTime=00:00:00 "
    "TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-12-04T04:06:08 EligibleTime=2026-12-04T04:06:08 "
    "AccrueTime=2026-12-04T04:06:08 StartTime=Unknown EndTime=Unknown Deadline=N/A SuspendTime=None "
    "SecsPreSuspend=0 LastSchedEval=2026-12-04T04:06:15 Scheduler=Main Partition=gpu "
    "AllocNode:Sid=fe01:1110 ReqNodeList=(null) ExcNodeList=(null) NodeList= NumNodes=1 NumCPUs=1 "
    "NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,mem=500M,node=1,billing=1,gres/gpu=2 "
    "Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 "
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=(null) WorkDir=/ceph/home/student1 StdErr=/ceph/home/student1/slurm-61.out StdIn=/dev/null "
    "StdOut=/ceph/home/student1/slurm-61.out Power= CpusPerTres=gpu:1 MemPerTres=gpu:1000 "
    "TresPerNode=gres:gpu:2 \n"
)

NODES_BUSY = (
    "NodeName=a40-01 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=1.54 "
    "AvailableFeatures=a40 ActiveFeatures=a40 Gres=gpu:a40:2 GresDrain=N/A GresUsed=gpu:a40:0(IDX:N/A) "
    "NodeAddr=10.213.0.31 NodeHostName=a40-01 Version=22.05.8 OS=Linux 6.18.44-fc-v1147 #1 SMP "
    "PREEMPT_DYNAMIC @0  RealMemory=3000 AllocMem=0 FreeMem=21697 Sockets=1 Boards=1 State=IDLE "
    "ThreadsPerCore=1 TmpDisk=0 Weight=48 Owner=N/A MCS_label=N/A Partitions=gpu,a40  "
    "BootTime=2026-12-03T22:34:33 SlurmdStartTime=2026-12-04T04:01:15 LastBusyTime=2026-12-04T04:01:15 "
    "CfgTRES=cpu=2,mem=3000M,billing=2,gres/gpu=2,gres/gpu:a40=2 AllocTRES= CapWatts=n/a CurrentWatts=0 "
    "AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
    "NodeName=t4-01 Arch=x86_64 CoresPerSocket=2  CPUAlloc=1 CPUEfctv=2 CPUTot=2 CPULoad=1.54 "
    "AvailableFeatures=t4 ActiveFeatures=t4 Gres=gpu:t4:2 GresDrain=N/A GresUsed=gpu:t4:1(IDX:0) "
    "NodeAddr=10.213.0.21 NodeHostName=t4-01 Version=22.05.8 OS=Linux 6.18.44-fc-v1147 #1 SMP "
    "PREEMPT_DYNAMIC @0  RealMemory=3000 AllocMem=1000 FreeMem=21697 Sockets=1 Boards=1 State=MIXED "
    "ThreadsPerCore=1 TmpDisk=0 Weight=16 Owner=N/A MCS_label=N/A Partitions=gpu,t4  "
    "BootTime=2026-12-03T22:34:33 SlurmdStartTime=2026-12-04T04:01:15 LastBusyTime=2026-12-04T04:02:26 "
    "CfgTRES=cpu=2,mem=3000M,billing=2,gres/gpu=2,gres/gpu:t4=2 "
    "AllocTRES=cpu=1,mem=1000M,gres/gpu=1,gres/gpu:t4=1 CapWatts=n/a CurrentWatts=0 AveWatts=0 "
    "ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
    "NodeName=t4-02 Arch=x86_64 CoresPerSocket=2  CPUAlloc=2 CPUEfctv=2 CPUTot=2 CPULoad=1.54 "
    "AvailableFeatures=t4 ActiveFeatures=t4 Gres=gpu:t4:2 GresDrain=N/A GresUsed=gpu:t4:2(IDX:0-1) "
    "NodeAddr=10.213.0.22 NodeHostName=t4-02 Version=22.05.8 OS=Linux 6.18.44-fc-v1147 #1 SMP "
    "PREEMPT_DYNAMIC @0  RealMemory=3000 AllocMem=2000 FreeMem=21697 Sockets=1 Boards=1 State=ALLOCATED "
    "ThreadsPerCore=1 TmpDisk=0 Weight=16 Owner=N/A MCS_label=N/A Partitions=gpu,t4  "
    "BootTime=2026-12-03T22:34:33 SlurmdStartTime=2026-12-04T04:01:15 LastBusyTime=2026-12-04T04:01:15 "
    "CfgTRES=cpu=2,mem=3000M,billing=2,gres/gpu=2,gres/gpu:t4=2 "
    "AllocTRES=cpu=2,mem=2000M,gres/gpu=2,gres/gpu:t4=2 CapWatts=n/a CurrentWatts=0 AveWatts=0 "
    "ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
)

# Not captured (the shared simulated cluster was left alone): the formats Slurm 22.05 prints for a drained
# node (as ailab/nodetools/gpuhealth.py sees it), a multi-node job and a slurmctld down.
T4_01_BUSY = NODES_BUSY.splitlines()[1]
T4_01_DRAINING = T4_01_BUSY.replace("State=MIXED", "State=MIXED+DRAIN") + (
    " Reason=gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1 [root@2026-11-23T09:47:01]"
)
A40_DOWN = NODES_BUSY.splitlines()[0].replace("State=IDLE", "State=DOWN*+DRAIN") + (
    " Reason=Not responding [slurm@2026-12-04T04:20:00]"
)
JOB_TWO_NODES = (
    "JobId=70 JobName=big UserId=student3(200003) JobState=RUNNING Reason=None NodeList=t4-[01-02] "
    "JOB_GRES=gpu:t4:4   Nodes=t4-[01-02] CPU_IDs=0-1 Mem=2000 GRES=gpu:t4:2(IDX:0-1) MinCPUsNode=1 "
    "Features=(null)"
)
JOB_SPLIT = (
    "JobId=71 UserId=student3(200003) JobState=RUNNING JOB_GRES=gpu:t4:4 "
    "Nodes=t4-01 CPU_IDs=0 Mem=1000 GRES=gpu:t4:1(IDX:1) "
    "Nodes=t4-[02,05] CPU_IDs=0-1 Mem=1000 GRES=gpu:t4:3(IDX:0-1,3) MinCPUsNode=1"
)
PING_DOWN = "Slurmctld(primary) at ctl01 is DOWN\n"


# Parsers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SMI_IDLE, [(0, UUID0, "Tesla T4", 0, 0, 16384), (1, UUID1, "Tesla T4", 0, 0, 16384)]),
        (SMI_LOADED, [(0, UUID0, "Tesla T4", 85, 2048, 16384), (1, UUID1, "Tesla T4", 0, 0, 16384)]),
        (SMI_GPU1_FAILED, [(0, UUID0, "Tesla T4", 85, 2048, 16384)]),
        # what the real tool prints for values it cannot read; a lost GPU's error line on stdout
        ("0, GPU-x, NVIDIA A40, [N/A], [Not Supported], 46068\n",
         [(0, "GPU-x", "NVIDIA A40", None, None, 46068)]),
        ("Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n", []),
        ("No devices were found\n", []),
        ("1, GPU-y, Some, Board, 3, 4, 5\n", [(1, "GPU-y", "Some, Board", 3, 4, 5)]),
        ("", []),
    ],
)  # fmt: skip
def test_parse_smi(text, expected):
    assert ex.parse_smi(text) == [ex.GpuReading(*row) for row in expected]


def test_parse_running_jobs():
    assert ex.parse_running_jobs(SQUEUE_T4_01) == [("59", "student1")]
    assert ex.parse_running_jobs("59|student1\n60|student2\n\nbogus\n") == [
        ("59", "student1"),
        ("60", "student2"),
    ]
    assert ex.parse_running_jobs("") == []


def test_parse_fields_keeps_values_with_spaces():
    fields = ex.parse_fields(T4_01_DRAINING)
    as_dict = dict(fields)
    assert as_dict["NodeName"] == "t4-01"
    assert as_dict["OS"] == "Linux 6.18.44-fc-v1147 #1 SMP PREEMPT_DYNAMIC @0"
    assert as_dict["CfgTRES"] == "cpu=2,mem=3000M,billing=2,gres/gpu=2,gres/gpu:t4=2"
    assert as_dict["AllocTRES"] == "cpu=1,mem=1000M,gres/gpu=1,gres/gpu:t4=1"
    assert as_dict["Reason"].startswith("gpu-health: GPU 1 (Tesla T4) missing")
    job = dict(ex.parse_fields(JOB_59_T4_01))
    assert job["AllocNode:Sid"] == "fe01:1086" and job["CPUs/Task"] == "1" and job["Power"] == ""
    assert job["JOB_GRES"] == "gpu:t4:1" and job["GRES"] == "gpu:t4:1(IDX:0)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", [0]),
        ("0-1", [0, 1]),
        ("0-1,3", [0, 1, 3]),
        ("2,5-6", [2, 5, 6]),
        ("N/A", []),
        ("", []),
        ("1-", []),
    ],
)
def test_expand_ranges(text, expected):
    assert ex.expand_ranges(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("t4-01", ["t4-01"]),
        ("t4-[01-02]", ["t4-01", "t4-02"]),
        ("t4-[01-02,05],a40-01", ["t4-01", "t4-02", "t4-05", "a40-01"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
        ("", []),
    ],
)
def test_expand_hostlist(text, expected):
    assert ex.expand_hostlist(text) == expected


@pytest.mark.parametrize(
    ("job", "node", "gpus"),
    [
        (JOB_59_T4_01, "t4-01", [0]),
        (JOB_59_T4_01, "t4-02", []),
        (JOB_60_T4_02, "t4-02", [0, 1]),
        (JOB_61_PENDING, "t4-01", []),  # pending: no per-node detail
        (JOB_TWO_NODES, "t4-02", [0, 1]),  # one detail for a host list
        (JOB_SPLIT, "t4-01", [1]),
        (JOB_SPLIT, "t4-05", [0, 1, 3]),
        (JOB_SPLIT, "t4-03", []),
    ],
)
def test_parse_job_gpus(job, node, gpus):
    assert ex.parse_job_gpus(job, node) == gpus


def test_job_user():
    assert ex.job_user(JOB_60_T4_02) == "student2"
    assert ex.job_user("JobId=1") == ""


@pytest.mark.parametrize(
    ("text", "state", "flags"),
    [
        ("IDLE", "idle", ()),
        ("MIXED", "mixed", ()),
        ("ALLOCATED", "allocated", ()),
        ("IDLE+DRAIN", "drained", ("drain",)),
        ("MIXED+DRAIN", "draining", ("drain",)),
        ("ALLOCATED+DRAIN", "draining", ("drain",)),
        ("IDLE+COMPLETING+DRAIN", "draining", ("completing", "drain")),
        ("DOWN*+DRAIN", "drained", ("not_responding", "drain")),  # as sinfo: drained*
        ("DOWN*", "down", ("not_responding",)),
        ("DOWN", "down", ()),
        ("IDLE*", "idle", ("not_responding",)),
        ("IDLE+COMPLETING", "completing", ("completing",)),
        ("ALLOCATED+COMPLETING", "allocated", ("completing",)),
        ("IDLE+FAIL", "fail", ("fail",)),
        ("ALLOCATED+FAIL", "failing", ("fail",)),
        ("IDLE+MAINTENANCE+RESERVED", "idle", ("maintenance", "reserved")),
        ("IDLE+CLOUD+POWERED_DOWN", "idle", ("cloud", "powered_down")),
        ("MIXED+REBOOT_REQUESTED", "mixed", ("reboot_requested",)),
        ("FUTURE", "future", ()),
        ("", "unknown", ()),
    ],
)
def test_node_state(text, state, flags):
    assert ex.node_state(text) == (state, flags)


@pytest.mark.parametrize(
    ("text", "counts"),
    [
        ("gpu:t4:2", {"t4": 2}),
        ("gpu:t4:1(IDX:0)", {"t4": 1}),
        ("gpu:a40:0(IDX:N/A)", {"a40": 0}),
        ("gpu:t4:3(IDX:0-1,3)", {"t4": 3}),
        ("gpu:t4:2(S:0-1),gpu:a40:1(S:1)", {"t4": 2, "a40": 1}),
        ("gpu:2", {"untyped": 2}),
        ("mps:100,gpu:t4:1", {"t4": 1}),
        ("(null)", {}),
        ("", {}),
    ],
)
def test_parse_gres(text, counts):
    assert ex.parse_gres(text) == counts


def test_parse_nodes_from_the_simulator():
    nodes = ex.parse_nodes(NODES_BUSY)
    assert [(n.name, n.state, n.flags, n.reason) for n in nodes] == [
        ("a40-01", "idle", (), ""),
        ("t4-01", "mixed", (), ""),
        ("t4-02", "allocated", (), ""),
    ]
    assert [(dict(n.gpus), dict(n.gpus_used)) for n in nodes] == [
        ({"a40": 2}, {"a40": 0}),
        ({"t4": 2}, {"t4": 1}),
        ({"t4": 2}, {"t4": 2}),
    ]
    assert all(n.schedulable and not n.drained for n in nodes)


def test_parse_nodes_drained_reason_loses_its_stamp():
    draining, down = ex.parse_nodes(f"{T4_01_DRAINING}\n{A40_DOWN}\n")
    assert (draining.state, draining.drained, draining.schedulable) == ("draining", True, False)
    assert draining.reason == "gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1"
    assert (down.state, down.flags, down.reason) == ("drained", ("not_responding", "drain"), "Not responding")


def test_gpu_counts():
    busy = ex.parse_nodes(NODES_BUSY)
    assert ex.gpu_counts(busy) == {"a40": ex.GpuCount(2, 0, 2), "t4": ex.GpuCount(4, 3, 1)}
    # t4-01 draining: its free GPU cannot be used; a40-01 down: neither can its two
    degraded = ex.parse_nodes(f"{A40_DOWN}\n{T4_01_DRAINING}\n{NODES_BUSY.splitlines()[2]}")
    assert ex.gpu_counts(degraded) == {"a40": ex.GpuCount(2, 0, 0), "t4": ex.GpuCount(4, 3, 0)}
    assert ex.gpu_counts([]) == {}


def test_parse_job_counts():
    assert ex.parse_job_counts(SQUEUE_JOBS) == {
        ("gpu", "pending", "QOSMaxGRESPerUser"): 1,
        ("t4", "running", "None"): 2,
    }
    assert ex.parse_job_counts("t4|PENDING|ReqNodeNotAvail, Reserved for maintenance\n") == {
        ("t4", "pending", "ReqNodeNotAvail, Reserved for maintenance"): 1
    }
    assert ex.parse_job_counts("\nbroken\n") == {}


@pytest.mark.parametrize(
    ("text", "up"),
    [
        (PING_UP, True),
        (PING_DOWN, False),
        ("Slurmctld(primary) at ctl01 is DOWN\nSlurmctld(backup) at ctl02 is UP\n", True),
        ("", False),
    ],
)
def test_parse_ping(text, up):
    assert ex.parse_ping(text) is up


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("10.213.0.21:9110", None, ("10.213.0.21", 9110)),
        ("[::]:9110", None, ("::", 9110)),
        (":9110", "0.0.0.0", ("0.0.0.0", 9110)),
        ("ctl01:6819", None, ("ctl01", 6819)),
    ],
)
def test_parse_address(text, default, expected):
    assert ex.parse_address(text, default) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9110", "is not HOST:PORT"),
        ("::1:9110", "in brackets, e.g. [::1]:9110"),
        (":6819", "has no host"),
        ("host:0", "from 1 to 65535"),
        ("host:99999", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
    ],
)
def test_parse_address_errors(text, message):
    with pytest.raises(ex.UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ex.parse_address(text)


# Collectors, end to end --------------------------------------------------------------------------------

SMI = ("nvidia-smi", f"--query-gpu={ex.SMI_FIELDS}", "--format=csv,noheader,nounits")
SQUEUE_NODE = ("squeue", "-h", "-w", "t4-01", "-t", "RUNNING", "-o", "%A|%u")
NODES = ("scontrol", "-d", "-o", "show", "node")
SQUEUE_ALL = ("squeue", "-h", "-a", "-t", "PENDING,RUNNING", "-o", "%P|%T|%r")
PING = ("scontrol", "ping")


class FakeRunner:
    """Answers commands from a table; anything else is a missing command.  Records every call."""

    def __init__(self, answers):
        self.answers = {tuple(k): v for k, v in answers.items()}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(tuple(argv))
        return self.answers.get(tuple(argv), (127, "", f"{argv[0]}: command not found"))


def job(jobid):
    return ("scontrol", "-d", "-o", "show", "job", jobid)


def samples(registry_or_collectors) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value}, parsed back from the exposition text."""
    if isinstance(registry_or_collectors, str):
        text = registry_or_collectors
    else:
        registry, _ = ex.build_registry(registry_or_collectors)
        text = generate_latest(registry).decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def labels(**kw):
    return tuple(sorted(kw.items()))


def gpu_labels(index, uuid):
    return labels(node="t4-01", gpu=str(index), uuid=uuid, model="Tesla T4")


def test_gpu_collector_reports_gpus_and_the_jobs_using_them():
    run = FakeRunner(
        {SMI: (0, SMI_LOADED, ""), SQUEUE_NODE: (0, SQUEUE_T4_01, ""), job("59"): (0, JOB_59_T4_01, "")}
    )
    got = samples([ex.GpuCollector("t4-01", run)])
    assert got["ailab_gpu_smi_ok"] == {labels(node="t4-01"): 1}
    assert got["ailab_gpu_utilization_percent"] == {gpu_labels(0, UUID0): 85, gpu_labels(1, UUID1): 0}
    assert got["ailab_gpu_memory_used_bytes"] == {gpu_labels(0, UUID0): 2048 * 2**20, gpu_labels(1, UUID1): 0}
    assert got["ailab_gpu_memory_total_bytes"][gpu_labels(1, UUID1)] == 16 * 2**30
    job_labels = labels(jobid="59", user="student1", node="t4-01", gpu="0")
    assert got["ailab_job_gpu_utilization_percent"] == {job_labels: 85}
    assert got["ailab_job_gpu_memory_used_bytes"] == {job_labels: 2048 * 2**20}
    assert got["ailab_exporter_collector_success"] == {labels(collector="gpu"): 1}
    assert labels(collector="gpu") in got["ailab_exporter_collector_duration_seconds"]
    assert run.calls == [SMI, SQUEUE_NODE, job("59")]


def test_gpu_fallen_off_the_bus_still_reports_the_others(caplog):
    job_on_gpu1 = JOB_59_T4_01.replace("GRES=gpu:t4:1(IDX:0)", "GRES=gpu:t4:1(IDX:1)")
    run = FakeRunner(
        {
            SMI: (15, SMI_GPU1_FAILED, SMI_GPU1_FAILED_ERR),
            SQUEUE_NODE: (0, SQUEUE_T4_01, ""),
            job("59"): (0, job_on_gpu1, ""),
        }
    )
    with caplog.at_level(logging.WARNING, logger="ailab-exporter"):
        got = samples([ex.GpuCollector("t4-01", run)])
    assert got["ailab_gpu_smi_ok"] == {labels(node="t4-01"): 0}
    assert list(got["ailab_gpu_utilization_percent"]) == [gpu_labels(0, UUID0)]
    assert "ailab_job_gpu_utilization_percent" not in got  # its GPU is the lost one
    assert got["ailab_exporter_collector_success"] == {labels(collector="gpu"): 0}
    assert "exited 15: Unable to determine the device handle for GPU 00000000:3B:00.0" in caplog.text


def test_gpu_collector_without_slurmctld_keeps_the_gpu_metrics(caplog):
    err = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    run = FakeRunner({SMI: (0, SMI_IDLE, ""), SQUEUE_NODE: (1, "", err)})
    with caplog.at_level(logging.WARNING, logger="ailab-exporter"):
        got = samples([ex.GpuCollector("t4-01", run)])
    assert len(got["ailab_gpu_utilization_percent"]) == 2
    assert "ailab_job_gpu_utilization_percent" not in got
    assert got["ailab_exporter_collector_success"] == {labels(collector="gpu"): 0}
    assert "Unable to contact slurm controller" in caplog.text


def test_gpu_collector_without_nvidia_smi():
    run = FakeRunner({SQUEUE_NODE: (0, "", "")})
    got = samples([ex.GpuCollector("t4-01", run)])
    assert got["ailab_gpu_smi_ok"] == {labels(node="t4-01"): 0}
    assert "ailab_gpu_utilization_percent" not in got
    assert got["ailab_exporter_collector_success"] == {labels(collector="gpu"): 0}


def slurm_runner(nodes=NODES_BUSY, ping=(0, PING_UP, "")):
    return FakeRunner({NODES: (0, nodes, ""), SQUEUE_ALL: (0, SQUEUE_JOBS, ""), PING: ping})


def test_slurm_collector_from_the_simulator():
    connects = []

    def connect(host, port, timeout):
        connects.append((host, port, timeout))
        return True

    got = samples([ex.SlurmCollector(slurm_runner(), ("10.213.0.11", 6819), connect, timeout=3)])
    assert got["ailab_slurm_node_state"] == {
        labels(node="a40-01", state="idle"): 1,
        labels(node="t4-01", state="mixed"): 1,
        labels(node="t4-02", state="allocated"): 1,
    }
    assert "ailab_slurm_node_drained" not in got and "ailab_slurm_node_flag" not in got
    assert got["ailab_slurm_gpus_total"] == {labels(gpu_type="a40"): 2, labels(gpu_type="t4"): 4}
    assert got["ailab_slurm_gpus_allocated"] == {labels(gpu_type="a40"): 0, labels(gpu_type="t4"): 3}
    assert got["ailab_slurm_gpus_idle"] == {labels(gpu_type="a40"): 2, labels(gpu_type="t4"): 1}
    assert got["ailab_slurm_jobs"] == {
        labels(partition="gpu", state="pending", reason="QOSMaxGRESPerUser"): 1,
        labels(partition="t4", state="running", reason="None"): 2,
    }
    assert got["ailab_slurm_daemon_up"] == {labels(daemon="slurmctld"): 1, labels(daemon="slurmdbd"): 1}
    assert got["ailab_exporter_collector_success"] == {labels(collector="slurm"): 1}
    assert connects == [("10.213.0.11", 6819, 3)]


def test_slurm_collector_drained_nodes_and_daemons_down():
    nodes = f"{A40_DOWN}\n{T4_01_DRAINING}\n{NODES_BUSY.splitlines()[2]}\n"
    run = slurm_runner(nodes, ping=(1, PING_DOWN, ""))
    got = samples([ex.SlurmCollector(run, ("ctl01", 6819), lambda h, p, t: False)])
    assert got["ailab_slurm_node_state"] == {
        labels(node="a40-01", state="drained"): 1,
        labels(node="t4-01", state="draining"): 1,
        labels(node="t4-02", state="allocated"): 1,
    }
    assert got["ailab_slurm_node_flag"] == {
        labels(node="a40-01", flag="not_responding"): 1,
        labels(node="a40-01", flag="drain"): 1,
        labels(node="t4-01", flag="drain"): 1,
    }
    assert got["ailab_slurm_node_drained"] == {
        labels(node="a40-01", reason="Not responding"): 1,
        labels(node="t4-01", reason="gpu-health: GPU 1 (Tesla T4) missing: expected 2x t4, found 1"): 1,
    }
    assert got["ailab_slurm_gpus_idle"] == {labels(gpu_type="a40"): 0, labels(gpu_type="t4"): 0}
    assert got["ailab_slurm_daemon_up"] == {labels(daemon="slurmctld"): 0, labels(daemon="slurmdbd"): 0}
    assert got["ailab_exporter_collector_success"] == {labels(collector="slurm"): 0}  # ping exited 1


def test_slurm_collector_when_slurmctld_is_gone():
    err = "slurm_load_node error: Unable to contact slurm controller (connect failure)\n"
    run = FakeRunner({NODES: (1, "", err), SQUEUE_ALL: (1, "", err), PING: (1, PING_DOWN, "")})
    got = samples([ex.SlurmCollector(run)])
    assert got["ailab_slurm_daemon_up"] == {labels(daemon="slurmctld"): 0}  # no slurmdbd without --slurmdbd
    assert "ailab_slurm_node_state" not in got and "ailab_slurm_jobs" not in got
    assert got["ailab_exporter_collector_success"] == {labels(collector="slurm"): 0}


def test_a_collector_that_raises_is_reported_and_the_others_still_run(caplog):
    class Broken:
        name = "gpu"

        def scrape(self):
            raise RuntimeError("bug")

    with caplog.at_level(logging.ERROR, logger="ailab-exporter"):
        got = samples([Broken(), ex.SlurmCollector(slurm_runner())])
    assert got["ailab_exporter_collector_success"] == {
        labels(collector="gpu"): 0,
        labels(collector="slurm"): 1,
    }
    assert "ailab_slurm_node_state" in got
    assert "gpu: collector failed" in caplog.text and "RuntimeError: bug" in caplog.text


def test_registering_runs_no_command():
    run = slurm_runner()
    ex.build_registry([ex.SlurmCollector(run), ex.GpuCollector("t4-01", run)])
    assert run.calls == []


# The command line -------------------------------------------------------------------------------------


def test_once_prints_both_collectors(capsys):
    run = FakeRunner(
        {
            SMI: (0, SMI_IDLE, ""),
            SQUEUE_NODE: (0, "", ""),
            NODES: (0, NODES_BUSY, ""),
            SQUEUE_ALL: (0, SQUEUE_JOBS, ""),
            PING: (0, PING_UP, ""),
        }
    )
    assert ex.main(["--once", "--collect", "gpu,slurm", "--node", "t4-01"], run=run) == 0
    got = samples(capsys.readouterr().out)
    assert got["ailab_exporter_collector_success"] == {
        labels(collector="gpu"): 1,
        labels(collector="slurm"): 1,
    }
    assert len(got["ailab_gpu_memory_total_bytes"]) == 2 and len(got["ailab_slurm_node_state"]) == 3


def test_once_exits_1_when_a_collector_failed(capsys):
    assert ex.main(["--once", "--collect", "slurm"], run=FakeRunner({})) == 1
    got = samples(capsys.readouterr().out)
    assert got["ailab_exporter_collector_success"] == {labels(collector="slurm"): 0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--collect", "gpu"], "give --listen ADDR:PORT"),
        (["--listen", "9110", "--collect", "gpu"], "argument --listen: '9110' is not HOST:PORT"),
        (["--listen", ":9110", "--collect", "gpu,disk"], "unknown collector disk: choose from gpu, slurm"),
        (["--once", "--collect", ","], "no collector"),
        (["--once", "--collect", "slurm", "--slurmdbd", ":6819"], "has no host"),
        (["--once", "--collect", "gpu", "--timeout", "0"], "from 0 to 300"),
        (["--once"], "--collect"),
    ],
)
def test_bad_arguments_exit_2_with_the_fix(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        ex.main(argv, run=FakeRunner({}))
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_listen_serves_the_private_registry(monkeypatch):
    started = []

    class Event:
        def wait(self):
            started.append("waited")

    monkeypatch.setattr(ex, "serve", lambda addr, port, app: started.append((port, addr)))
    monkeypatch.setattr(ex.threading, "Event", Event)
    assert ex.main(["--listen", "10.213.0.21:9110", "--collect", "gpu"], run=FakeRunner({})) == 0
    assert started == [(9110, "10.213.0.21"), "waited"]


def test_listen_on_a_busy_port_is_a_clear_error(monkeypatch, capsys):
    def busy(addr, port, app):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(ex, "serve", busy)
    assert ex.main(["--listen", "[::1]:9110", "--collect", "gpu"], run=FakeRunner({})) == 1
    err = capsys.readouterr().err
    assert "cannot listen on [::1]:9110: [Errno 98] Address already in use" in err and "fix:" in err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_metrics_over_http():
    """The server on the private registry: what Prometheus scrapes (loopback is always allowed)."""
    port = free_port()
    registry, _ = ex.build_registry([ex.SlurmCollector(slurm_runner())])
    server = ex.serve("127.0.0.1", port, ex.guarded_app(registry, frozenset({"10.0.0.5"})))
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert samples(text)["ailab_slurm_daemon_up"] == {labels(daemon="slurmctld"): 1}


@pytest.mark.parametrize(
    ("remote", "allow", "ok"),
    [
        ("10.0.0.5", frozenset({"10.0.0.5"}), True),
        ("10.0.0.9", frozenset({"10.0.0.5"}), False),  # a student on the front-end
        ("127.0.0.1", frozenset({"10.0.0.5"}), True),
        ("::1", frozenset({"10.0.0.5"}), True),
        ("", frozenset({"10.0.0.5"}), False),
        ("10.0.0.9", None, True),  # no --allow: anyone
    ],
)
def test_only_the_allowed_scrapers_get_the_metrics(remote, allow, ok):
    assert ex.may_scrape(remote, allow) is ok
    registry, _ = ex.build_registry([ex.SlurmCollector(slurm_runner())])
    status = []
    environ = {"REMOTE_ADDR": remote, "REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    body = b"".join(ex.guarded_app(registry, allow)(environ, lambda s, h: status.append(s)))
    assert status[0].startswith("200" if ok else "403"), status
    assert (b"ailab_slurm_daemon_up" in body) is ok


def test_allow_lists_addresses():
    assert ex.parse_allow("10.0.0.5, 10.0.0.6") == frozenset({"10.0.0.5", "10.0.0.6"})
    for bad in ("ctl01", ",", "10.0.0.300"):
        with pytest.raises(ex.UsageError, match=r"--allow 10\.0\.0\.5"):
            ex.parse_allow(bad)


def test_subprocess_runner():
    run = ex.subprocess_runner(timeout=5)
    assert run(["sh", "-c", "echo out; echo err >&2; exit 3"]) == (3, "out\n", "err\n")
    status, _, err = run(["ailab-no-such-command"])
    assert status == 127 and "command not found" in err
    status, _, err = ex.subprocess_runner(timeout=0.2)(["sleep", "5"])
    assert status == 124 and "--timeout" in err
