-- wrk is duration-based; this makes it stop after a fixed number of responses (BENCH_REQUESTS, one thread).
-- Use with -t1: the count is per thread. wrk's main thread sleeps for the whole -d duration even after the
-- worker stopped, so the harness sends SIGINT when it reads BENCH_DONE. Non-2xx/3xx responses are
-- reported as errors (wrk's summary).
local limit = tonumber(os.getenv("BENCH_REQUESTS") or "1000")
local count = 0

function response(status, headers, body)
  count = count + 1
  if count == limit then
    io.write("BENCH_DONE\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format("BENCH_RESULT requests=%d errors=%d\n", summary.requests, summary.errors.status))
end
