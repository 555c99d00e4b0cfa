-- luacheck (Debian lua-check) settings for the project's Lua: ailab/templates/job_submit.lua, the source of
-- /etc/slurm/job_submit.lua (`make lint` checks it; tests/unit/test_slurm_job_submit_lua.py checks renders).
std = "lua51"
read_globals = { "slurm" }        -- the table Slurm's job_submit/lua plugin provides
globals = { "slurm_job_submit", "slurm_job_modify" }  -- the entry points the plugin calls
max_line_length = 120
ignore = { "212/part_list" }      -- the plugin's fixed signatures pass it; the rules do not need it
