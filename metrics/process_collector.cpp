#include "metrics/process_collector.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

#include <prometheus/metric_type.h>

namespace relay {
namespace {

// The fields of /proc/self/stat that the metrics need (see proc(5)).
struct ProcStat {
  double utime_ticks = 0;
  double stime_ticks = 0;
  double starttime_ticks = 0;
  double vsize_bytes = 0;
  double rss_pages = 0;
};

std::optional<ProcStat> read_proc_stat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // Field 2 (comm) is parenthesised and may contain spaces: fields are counted after its ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  const std::vector<std::string> fields{std::istream_iterator<std::string>(rest),
                                        std::istream_iterator<std::string>()};
  // fields[0] is field 3 (state), so field n is fields[n - 3]; the ones read here are integers.
  bool ok = true;
  auto field = [&](std::size_t n) -> double {
    std::uint64_t value = 0;
    if (n - 3 >= fields.size()) {
      ok = false;
      return 0;
    }
    const std::string& text = fields[n - 3];
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) ok = false;
    return static_cast<double>(value);
  };
  ProcStat stat;
  stat.utime_ticks = field(14);
  stat.stime_ticks = field(15);
  stat.starttime_ticks = field(22);
  stat.vsize_bytes = field(23);
  stat.rss_pages = field(24);
  if (!ok) return std::nullopt;
  return stat;
}

// Seconds on `clock`, e.g. CLOCK_BOOTTIME.
std::optional<double> clock_seconds(clockid_t clock) {
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) return std::nullopt;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::optional<double> count_open_fds() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  if (ec) return std::nullopt;
  double count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    ++count;
  }
  // The iterator's own descriptor is one of the entries; it is not the process's.
  return count > 0 ? count - 1 : 0;
}

std::optional<double> max_fds() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<double>(limit.rlim_cur);
}

prometheus::MetricFamily single(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

ProcessCollector::ProcessCollector() {
  // The kernel gives the start time in ticks since boot. It is converted with the boot-time
  // clock rather than /proc/stat's btime, which hardened units (systemd ProcSubset=pid) hide.
  const auto stat = read_proc_stat();
  const auto since_boot = clock_seconds(CLOCK_BOOTTIME);
  const auto now = clock_seconds(CLOCK_REALTIME);
  const long ticks = sysconf(_SC_CLK_TCK);
  if (stat && since_boot && now && ticks > 0) {
    start_time_seconds_ = *now - (*since_boot - stat->starttime_ticks / static_cast<double>(ticks));
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (const auto stat = read_proc_stat()) {
    if (ticks > 0) {
      out.push_back(single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                           MetricType::Counter,
                           (stat->utime_ticks + stat->stime_ticks) / static_cast<double>(ticks)));
    }
    if (page > 0) {
      out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.",
                           MetricType::Gauge, stat->rss_pages * static_cast<double>(page)));
    }
    out.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
                         stat->vsize_bytes));
  }
  if (const auto fds = count_open_fds()) {
    out.push_back(single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, *fds));
  }
  if (const auto limit = max_fds()) {
    out.push_back(single("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, *limit));
  }
  if (start_time_seconds_) {
    out.push_back(single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                         MetricType::Gauge, *start_time_seconds_));
  }
  return out;
}

}  // namespace relay
