-- Argo CD health check for masterexport.io/MasterExportSet (the same reading as MasterExport's).
--
-- The operator writes kstatus-style conditions: Ready (always), Reconciling (while it works) and
-- Stalled (when a person must act), each with a reason and a message; see the README's table of
-- reasons; a set's Stalled names its failed children. They map to Argo CD's health as Flux and
-- kstatus read them:
--   spec.suspend: true                      -> Suspended
--   no status yet, or an older generation   -> Progressing (the operator has not seen this spec)
--   Stalled=True                            -> Degraded
--   Reconciling=True                        -> Progressing
--   Ready=True                              -> Healthy
--   otherwise (Ready False or missing)      -> Progressing
-- Written for Lua 5.1 (Argo CD runs gopher-lua), using only the base and string libraries.
local hs = {}

local function find_condition(conditions, wanted)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local reason = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    return reason .. ": " .. condition.message
  end
  return reason
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: spec.suspend is true, the set creates no more children"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = find_condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

-- Reconciling before Ready, as kstatus orders them: work in progress is not yet healthy.
local reconciling = find_condition(status.conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local ready = find_condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
