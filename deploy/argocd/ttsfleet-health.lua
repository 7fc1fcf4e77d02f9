-- Argo CD health check for ttsfleet.dev TTSPool and TTSVoice, installed in
-- argocd-cm as resource.customizations.health.ttsfleet.dev_TTSPool and
-- ..._TTSVoice (see kustomization.yaml next to this file).
--
-- The operator reports Ready, Progressing and Degraded conditions; Argo CD
-- wants one word. In order: a status older than the spec is Progressing (the
-- operator has not acted on the change yet), Degraded=True is Degraded, a
-- pool scaled to zero is Suspended, Ready=True is Healthy, and anything else
-- is on its way: Progressing. A TTSVoice's conditions come from the
-- operator's check of its files: Progressing while it fetches them (Ready
-- Unknown, reason Resolving), Degraded with the reason (a wrong digest, a
-- missing file), Healthy once they check out. Without conditions, either
-- kind is waiting for the operator.
--
-- Written for Argo CD's Lua 5.1 sandbox: base, string, table and math only.

local function condition(conditions, kind)
  for _, c in ipairs(conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local function health(resource)
  local status = resource.status or {}
  local conditions = status.conditions
  if conditions == nil or #conditions == 0 then
    if resource.kind == "TTSVoice" then
      return "Progressing", "waiting for the operator to check the voice's files"
    end
    return "Progressing", "waiting for the operator to report the pool's status"
  end
  local generation = (resource.metadata or {}).generation
  if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
    return "Progressing", "the operator has not yet acted on generation " .. tostring(generation)
  end
  local degraded = condition(conditions, "Degraded")
  if is_true(degraded) then
    return "Degraded", message(degraded, "Degraded")
  end
  local ready = condition(conditions, "Ready")
  local replicas = (resource.spec or {}).replicas
  if replicas == 0 or (ready ~= nil and ready.reason == "ScaledToZero") then
    return "Suspended", message(ready, "scaled to zero replicas")
  end
  if is_true(ready) then
    return "Healthy", message(ready, "Ready")
  end
  return "Progressing", message(condition(conditions, "Progressing"), message(ready, "not ready yet"))
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
