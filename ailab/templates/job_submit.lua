-- ailab:header (ailab.slurm.render_job_submit_lua writes the generated-file header on this line)
--
-- Refuses jobs that break the AI-LAB usage guidelines, at submission (with a message that names the rule
-- and the fix) and when a job is updated.  Returns slurm.ESLURM_* codes (those exported to Lua by Slurm
-- 22.05, and ESLURM_INVALID_GRES by number): returning an undefined constant (nil) would silently ACCEPT.
-- root and the SlurmUser are exempt (operators' test and maintenance jobs).

-- ailab:config:begin (render_job_submit_lua puts the cluster's ailab_policy here; these are examples)
local GPU_REQUIRED = true
local MAX_MINUTES = 720
local MAX_CPUS_PER_GPU = 5
local MAX_MEM_PER_GPU_MB = 42000
local MAX_NODES = 2
local ESLURM_INVALID_GRES = 2072
local SLURM_USER = "slurm"
local MSG = {  -- the refusal messages: ailab.slurm.job_submit_messages
    all_memory = "drop --mem=0 (usage guideline 6)",
    exclusive = "drop --exclusive (usage guideline 6)",
    no_gpu = "request a GPU, e.g. --gres=gpu:1 (usage guideline 5)",
    too_long = "set --time=12:00:00 or less (usage guideline 4)",
    too_many_cpus = "ask for fewer CPUs per GPU (usage guideline 6)",
    too_many_nodes = "set --nodes=2 or less (usage guideline 6)",
    too_much_memory = "ask for less memory per GPU (usage guideline 6)",
}
-- ailab:config:end

local NO_VAL = slurm.NO_VAL or 4294967294
local NO_VAL16 = slurm.NO_VAL16 or 65534
-- --exclusive (JOB_SHARED_NONE), --exclusive=user, --exclusive=mcs; OverSubscribe=no in scontrol update.
local WHOLE_NODE = {
    [slurm.JOB_SHARED_NONE or 0] = true,
    [slurm.JOB_SHARED_USER or 2] = true,
    [slurm.JOB_SHARED_MCS or 3] = true,
}

-- The fields through which 22.05 passes a GPU request: --gres and --gpus-per-node (tres_per_node), --gpus
-- (tres_per_job), --gpus-per-socket, --gpus-per-task.  Values look like "gres:gpu:t4:2" or "gres/gpu=1";
-- "" in an update clears the field.
local GPU_FIELDS = { "tres_per_node", "tres_per_job", "tres_per_socket", "tres_per_task" }
-- The fields that size a job, by how 22.05 marks them unset: strings (nil), 16-bit and 32-bit numbers
-- (NO_VAL16 / NO_VAL), memory (nil: job_submit/lua splits pn_min_memory into these two by MEM_PER_CPU).
local STRING_FIELDS = { "tres_per_node", "tres_per_job", "tres_per_socket", "tres_per_task",
                        "cpus_per_tres", "mem_per_tres" }
local NUM16_FIELDS = { "cpus_per_task", "pn_min_cpus", "ntasks_per_node", "sockets_per_node", "shared" }
local NUM32_FIELDS = { "min_nodes", "max_nodes", "min_cpus", "num_tasks" }
local MEM_FIELDS = { "min_mem_per_node", "min_mem_per_cpu" }
-- A job record (slurm_job_modify's job_rec) has these of them; the others come from the update only.
local RECORD_FIELDS = { "tres_per_node", "tres_per_job", "tres_per_socket", "tres_per_task",
                        "cpus_per_tres", "mem_per_tres", "min_nodes", "min_cpus", "pn_min_cpus",
                        "min_mem_per_node", "min_mem_per_cpu" }

local function uid_of(name)
    local f = io.open("/etc/passwd", "r")
    if f == nil then return nil end
    for line in f:lines() do
        local user, uid = string.match(line, "^([^:]*):[^:]*:(%d+):")
        if user == name then
            f:close()
            return tonumber(uid)
        end
    end
    f:close()
    return nil
end

local EXEMPT = { [0] = true }
local slurm_uid = uid_of(SLURM_USER)
if slurm_uid ~= nil then EXEMPT[slurm_uid] = true end

local function get(object, name)
    if object == nil then return nil end
    local ok, value = pcall(function() return object[name] end)
    if ok then return value end
    return nil
end

-- GPUs asked for by one TRES/GRES specification, e.g. "gres:gpu:t4:2,gres:shard:1" -> 2.  Also reads the
-- per-GPU count of cpus_per_tres ("gres:gpu:4": 4 CPUs per GPU).
local function ailab_gpus_in(spec)
    if spec == nil or spec == "" then return 0 end
    local total = 0
    for item in string.gmatch(spec, "[^,]+") do
        item = string.gsub(item, "^%s+", "")
        item = string.gsub(item, "^gres[:/]", "")
        local name = string.match(item, "^([%w_%-]+)")
        if name == "gpu" then
            local count = string.match(item, "[:=](%d+)[kKmMgG]?$")
            if count == nil then
                total = total + 1            -- "gpu" or "gpu:t4": one GPU
            else
                total = total + tonumber(count)
            end
        end
    end
    return total
end

-- Memory per GPU in a mem_per_tres specification ("gres:gpu:4096", MB; a K/M/G/T suffix scales it).
local function ailab_mem_per_gpu_in(spec)
    if spec == nil or spec == "" then return 0 end
    local scale = { k = 1 / 1024, m = 1, g = 1024, t = 1024 * 1024 }
    for item in string.gmatch(spec, "[^,]+") do
        item = string.gsub(string.gsub(item, "^%s+", ""), "^gres[:/]", "")
        if string.match(item, "^gpu[:=]") then
            local count, unit = string.match(item, "[:=](%d+)([kKmMgGtT]?)$")
            if count ~= nil then
                return tonumber(count) * (scale[string.lower(unit)] or 1)
            end
        end
    end
    return 0
end

local function ailab_requested_gpus(job_desc)
    local total = 0
    for _, field in ipairs(GPU_FIELDS) do
        local value = get(job_desc, field)
        if type(value) == "string" then
            total = total + ailab_gpus_in(value)
        end
    end
    return total
end

-- The job's sizing fields as one table (nil: unset).  With a job record (an update), a field the update
-- does not set is the record's; memory is one setting (per node or per CPU), taken from the update when it
-- sets either.
local function ailab_view(job_desc, job_rec)
    local t, set = {}, {}
    for _, f in ipairs(STRING_FIELDS) do
        local v = get(job_desc, f)
        if type(v) == "string" then t[f] = v; set[f] = true end
    end
    for _, f in ipairs(NUM16_FIELDS) do
        local v = get(job_desc, f)
        if type(v) == "number" and v ~= NO_VAL16 then t[f] = v; set[f] = true end
    end
    for _, f in ipairs(NUM32_FIELDS) do
        local v = get(job_desc, f)
        if type(v) == "number" and v ~= NO_VAL then t[f] = v; set[f] = true end
    end
    for _, f in ipairs(MEM_FIELDS) do
        local v = get(job_desc, f)
        if type(v) == "number" then t[f] = v; set[f] = true end
    end
    if job_rec ~= nil then
        local mem_set = set.min_mem_per_node or set.min_mem_per_cpu
        for _, f in ipairs(RECORD_FIELDS) do
            local is_mem = (f == "min_mem_per_node" or f == "min_mem_per_cpu")
            if not set[f] and not (is_mem and mem_set) then
                local v = get(job_rec, f)
                if type(v) == "string" or (type(v) == "number" and v ~= NO_VAL and v ~= NO_VAL16) then
                    t[f] = v
                end
            end
        end
    end
    return t, set
end

-- GPUs, CPUs, memory (MB) and nodes the job asks for at least, from a view.
local function ailab_size(t)
    local nodes = t.min_nodes or 1
    if nodes < 1 then nodes = 1 end
    local tasks = t.num_tasks
    if tasks == nil and t.ntasks_per_node ~= nil then tasks = t.ntasks_per_node * nodes end
    if tasks == nil or tasks < 1 then tasks = 1 end
    local gpus = math.max(ailab_gpus_in(t.tres_per_job),
                          ailab_gpus_in(t.tres_per_node) * nodes,
                          ailab_gpus_in(t.tres_per_task) * tasks,
                          ailab_gpus_in(t.tres_per_socket) * (t.sockets_per_node or 1) * nodes)
    local cpus = math.max(t.min_cpus or 0,
                          tasks * (t.cpus_per_task or 1),
                          (t.pn_min_cpus or 0) * nodes,
                          ailab_gpus_in(t.cpus_per_tres) * gpus)
    local mem = math.max((t.min_mem_per_node or 0) * nodes,
                         (t.min_mem_per_cpu or 0) * cpus,
                         ailab_mem_per_gpu_in(t.mem_per_tres) * gpus)
    local max_nodes = t.max_nodes
    if max_nodes ~= nil and max_nodes < nodes then max_nodes = nil end   -- 0: no maximum given
    return gpus, cpus, mem, math.max(nodes, max_nodes or 0)
end

-- Rule 6 on a view: nil, or the reason (a key of MSG) and the error code.
local function ailab_size_problem(t)
    if t.shared ~= nil and WHOLE_NODE[t.shared] then
        return "exclusive", slurm.ESLURM_ACCESS_DENIED
    end
    local gpus, cpus, mem, nodes = ailab_size(t)
    if nodes > MAX_NODES then
        return "too_many_nodes", slurm.ESLURM_INVALID_NODE_COUNT
    end
    if t.min_mem_per_node == 0 or t.min_mem_per_cpu == 0 then
        return "all_memory", slurm.ESLURM_ACCESS_DENIED
    end
    if gpus < 1 then return nil end   -- the GPU rule (or gpu_required: false) decides
    if cpus > MAX_CPUS_PER_GPU * gpus then
        return "too_many_cpus", slurm.ESLURM_ACCESS_DENIED
    end
    if mem > MAX_MEM_PER_GPU_MB * gpus then
        return "too_much_memory", slurm.ESLURM_ACCESS_DENIED
    end
    return nil
end

local function too_long(limit)
    return limit ~= nil and limit ~= NO_VAL and (limit == slurm.INFINITE or limit > MAX_MINUTES)
end

function slurm_job_submit(job_desc, part_list, submit_uid)
    if EXEMPT[submit_uid] then return slurm.SUCCESS end
    local name = tostring(get(job_desc, "name"))
    if GPU_REQUIRED and ailab_requested_gpus(job_desc) < 1 then
        slurm.log_user("%s", MSG.no_gpu)
        slurm.log_info("ailab: refused job %s of uid %d: no GPU requested", name, submit_uid)
        return slurm.ESLURM_ACCESS_DENIED
    end
    local limit = get(job_desc, "time_limit")
    if too_long(limit) then
        slurm.log_user("%s", MSG.too_long)
        slurm.log_info("ailab: refused job %s of uid %d: time limit %d min over %d",
                       name, submit_uid, limit, MAX_MINUTES)
        return slurm.ESLURM_INVALID_TIME_LIMIT
    end
    local reason, code = ailab_size_problem((ailab_view(job_desc, nil)))
    if reason ~= nil then
        slurm.log_user("%s", MSG[reason])
        slurm.log_info("ailab: refused job %s of uid %d: %s", name, submit_uid, reason)
        return code
    end
    return slurm.SUCCESS
end

-- An update is checked as the job it would make: the update's fields over the job record's.  22.05 does
-- not pass log_user() messages of job_modify to the user (it logs an error instead), so this logs the
-- reason for operators and the user sees the code's text.
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    if EXEMPT[modify_uid] then return slurm.SUCCESS end
    local job_id = tostring(get(job_rec, "job_id"))
    local t, set = ailab_view(job_desc, job_rec)
    local touches_gpus = false
    for _, f in ipairs(GPU_FIELDS) do
        if set[f] then touches_gpus = true end
    end
    local touches_size = next(set) ~= nil  -- the update sets a sizing field
    if GPU_REQUIRED and touches_gpus then
        local gpus = 0
        for _, f in ipairs(GPU_FIELDS) do gpus = gpus + ailab_gpus_in(t[f]) end
        if gpus < 1 then
            slurm.log_info("ailab: refused update of job %s by uid %d: it would leave no GPU (%s)",
                           job_id, modify_uid, MSG.no_gpu)
            return ESLURM_INVALID_GRES
        end
    end
    if too_long(get(job_desc, "time_limit")) then
        slurm.log_info("ailab: refused update of job %s by uid %d: %s", job_id, modify_uid, MSG.too_long)
        return slurm.ESLURM_INVALID_TIME_LIMIT
    end
    if touches_size then
        local reason, code = ailab_size_problem(t)
        if reason ~= nil then
            slurm.log_info("ailab: refused update of job %s by uid %d: %s", job_id, modify_uid, MSG[reason])
            return code
        end
    end
    return slurm.SUCCESS
end

return slurm.SUCCESS
