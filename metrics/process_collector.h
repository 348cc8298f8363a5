#pragma once
// ProcessCollector: the standard process_* metrics (as the Go and Python clients name them),
// read from /proc/self on every scrape. prometheus-cpp core does not ship them.
//
// A value whose source can't be read (e.g. /proc not mounted) is left out of the scrape rather
// than reported as zero.

#include <optional>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace relay {

class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector();

  // process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
  // process_open_fds, process_max_fds, process_start_time_seconds.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Constant for the life of the process, so computed once.
  std::optional<double> start_time_seconds_;
};

}  // namespace relay
