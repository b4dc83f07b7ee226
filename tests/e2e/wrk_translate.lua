-- wrk script for the load figure of `attend serve` (BENCHMARKS.md): every request POSTs one short
-- reverse-task sentence (4–8 tokens) to /translate, cycling through a few, with greedy search.
--   wrk -t2 -c32 -d15s --latency -s tests/e2e/wrk_translate.lua http://127.0.0.1:8080/translate
local sentences = {
  "12 7 33 5", "41 18 26 9 3", "2 44 17 30 8 21", "50 1 36 11 27 6 14",
  "19 23 42 0 38 5 29 13", "7 7 31 46", "25 16 3 48 10", "34 22 9 40 15 1",
}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #sentences + 1
  return wrk.format(nil, nil, nil, '{"text": "' .. sentences[i] .. '"}')
end
