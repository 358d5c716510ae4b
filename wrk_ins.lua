counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"path":"messages:send","args":{"channel":"w1","n":%d,"body":"hello"},"format":"json"}', counter)
  return wrk.format("POST", nil, {["Content-Type"]="application/json"}, body)
end
