
-- Appended to every script: the latency percentiles the harness reads.
function done(summary, latency, requests)
  io.write(string.format("streamgate-latency-us p50=%d p99=%d p999=%d max=%d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
