// Over 450 lines: the table of flags is one list on purpose (every flag, its parsing and its
// error next to the others), with the checks that tie flags together after it.
#include "relay/config/config.h"

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <functional>
#include <optional>

#include "relay/config/startup_files.h"
#include "relay/core/duration.h"

namespace relay {

namespace {

// Sizes take an optional KiB/MiB/GiB suffix ("1MiB", "65536").
std::optional<std::size_t> parse_size(std::string_view text) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  const std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  int shift = -1;
  if (suffix.empty() || suffix == "B") shift = 0;
  if (suffix == "KiB") shift = 10;
  if (suffix == "MiB") shift = 20;
  if (suffix == "GiB") shift = 30;
  if (shift < 0 || value > (std::numeric_limits<std::size_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<bool> parse_bool(std::string_view text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return std::nullopt;
}

struct Flag {
  std::string name;
  bool takes_value;
  bool repeatable;
  std::function<void(Config&, const std::string&)> apply;
};

// A value as it may appear in the one-line error: control characters shown as '?'.
std::string printable(std::string value) {
  for (char& c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return value;
}

[[noreturn]] void fail(const std::string& flag, const std::string& value, const std::string& expected) {
  throw ConfigError("invalid value '" + printable(value) + "' for --" + flag + ": expected " + expected);
}

// An http(s) base URL with a host, such as http://10.0.0.7:8080 or http://relay-0.relay:8080;
// a trailing slash is dropped so that paths can be appended.
std::string base_url_value(const std::string& flag, const std::string& value) {
  const auto url = boost::urls::parse_absolute_uri(value);
  const bool fits = url && (url->scheme() == "http" || url->scheme() == "https") && !url->host().empty() &&
                    (url->path().empty() || url->path() == "/") && !url->has_query() && !url->has_fragment() &&
                    !url->has_userinfo();
  if (!fits) fail(flag, value, "an http:// or https:// URL such as http://10.0.0.7:8080");
  std::string text = value;
  if (text.back() == '/') text.pop_back();
  return text;
}

// A shard name: what the contract allows ([a-z0-9-]{1,63}), a DNS label without upper case.
bool is_shard_name(std::string_view name) {
  return !name.empty() && name.size() <= 63 &&
         std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

// The items of a comma-separated list, empty ones included (callers decide what they mean).
std::vector<std::string> comma_items(const std::string& value) {
  std::vector<std::string> items;
  std::size_t start = 0;
  for (;;) {
    const auto comma = value.find(',', start);
    items.push_back(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

std::int64_t duration_value(const std::string& flag, const std::string& value, bool allow_zero = false) {
  const auto ms = parse_duration_ms(value);
  if (!ms || (!allow_zero && *ms == 0)) fail(flag, value, "a duration such as 500ms, 5s, 10m, 1h or 7d");
  return *ms;
}

// A file path; what the file holds is checked once every flag is known (check_cluster).
std::string file_value(const std::string& flag, const std::string& value) {
  if (value.empty()) fail(flag, value, "a file path");
  return value;
}

std::vector<Flag> flags() {
  return {
      {"listen", true, false,
       [](Config& c, const std::string& v) {
         const auto colon = v.rfind(':');
         const auto port = colon == std::string::npos ? std::nullopt : parse_number<std::uint16_t>(v.substr(colon + 1));
         if (!port || colon == 0) fail("listen", v, "HOST:PORT");
         c.listen_host = v.substr(0, colon);
         if (c.listen_host.size() > 2 && c.listen_host.front() == '[' && c.listen_host.back() == ']') {
           c.listen_host = c.listen_host.substr(1, c.listen_host.size() - 2);
         }
         // An address, not a name: relayd binds exactly where it is told, never where DNS says.
         boost::system::error_code ec;
         boost::asio::ip::make_address(c.listen_host, ec);
         if (ec) fail("listen", v, "HOST:PORT with HOST an IP address");
         c.listen_port = *port;
       }},
      {"data-dir", true, false,
       [](Config& c, const std::string& v) {
         if (v.empty()) fail("data-dir", v, "a directory path");
         c.data_dir = v;
       }},
      {"api-key", true, true,
       [](Config& c, const std::string& v) {
         const auto colon = v.find(':');
         const std::string scope = v.substr(0, colon == std::string::npos ? 0 : colon);
         const std::string key = colon == std::string::npos ? "" : v.substr(colon + 1);
         if ((scope != "admin" && scope != "ingest") || key.size() < 8) {
           throw ConfigError("invalid --api-key: expected SCOPE:KEY with scope admin or ingest and a key of at least 8 characters");
         }
         c.api_keys.push_back({scope == "admin" ? ApiScope::admin : ApiScope::ingest, key});
       }},
      {"insecure-no-auth", false, false, [](Config& c, const std::string&) { c.insecure_no_auth = true; }},
      {"durability", true, false,
       [](Config& c, const std::string& v) {
         if (v != "fsync" && v != "buffered") fail("durability", v, "fsync or buffered");
         c.sync_writes = v == "fsync";
       }},
      {"retry-initial", true, false,
       [](Config& c, const std::string& v) { c.retry_initial_ms = duration_value("retry-initial", v); }},
      {"retry-max-delay", true, false,
       [](Config& c, const std::string& v) { c.retry_max_delay_ms = duration_value("retry-max-delay", v); }},
      {"retry-window", true, false,
       [](Config& c, const std::string& v) { c.retry_window_ms = duration_value("retry-window", v); }},
      {"attempt-timeout", true, false,
       [](Config& c, const std::string& v) { c.attempt_timeout_ms = duration_value("attempt-timeout", v); }},
      {"connect-timeout", true, false,
       [](Config& c, const std::string& v) { c.connect_timeout_ms = duration_value("connect-timeout", v); }},
      {"ca-file", true, false,
       [](Config& c, const std::string& v) {
         std::error_code ec;
         if (!std::filesystem::is_regular_file(v, ec) || !std::ifstream(v).good()) fail("ca-file", v, "a readable PEM file of CA certificates");
         c.ca_file = v;
       }},
      {"max-in-flight", true, false,
       [](Config& c, const std::string& v) {
         const auto n = parse_number<std::uint32_t>(v);
         if (!n || *n == 0) fail("max-in-flight", v, "a positive integer");
         c.max_in_flight = *n;
       }},
      {"max-body", true, false,
       [](Config& c, const std::string& v) {
         const auto n = parse_size(v);
         if (!n || *n == 0) fail("max-body", v, "a size such as 1MiB, 512KiB or 65536");
         c.max_body_bytes = *n;
       }},
      {"max-body-memory", true, false,
       [](Config& c, const std::string& v) {
         const auto n = parse_size(v);
         if (!n || *n == 0) fail("max-body-memory", v, "a size such as 256MiB or 1GiB");
         c.max_body_memory = *n;
       }},
      {"max-connections", true, false,
       [](Config& c, const std::string& v) {
         const auto n = parse_number<std::uint32_t>(v);
         if (!n || *n == 0) fail("max-connections", v, "a positive integer");
         c.max_connections = *n;
       }},
      {"max-pending-deliveries", true, false,
       [](Config& c, const std::string& v) {
         const auto n = parse_number<std::uint64_t>(v);
         if (!n) fail("max-pending-deliveries", v, "a number of deliveries (0 for no bound)");
         c.max_pending_deliveries = *n;
       }},
      {"retention", true, false, [](Config& c, const std::string& v) { c.retention_ms = duration_value("retention", v); }},
      {"dlq-retention", true, false,
       [](Config& c, const std::string& v) { c.dlq_retention_ms = duration_value("dlq-retention", v); }},
      {"retention-interval", true, false,
       [](Config& c, const std::string& v) { c.retention_interval_ms = duration_value("retention-interval", v); }},
      {"shutdown-grace", true, false,
       [](Config& c, const std::string& v) { c.shutdown_grace_ms = duration_value("shutdown-grace", v, true); }},
      {"circuit-probe-interval", true, false,
       [](Config& c, const std::string& v) {
         c.circuit_probe_interval_ms = duration_value("circuit-probe-interval", v);
       }},
      {"disable-after", true, false,
       [](Config& c, const std::string& v) { c.disable_after_ms = duration_value("disable-after", v, true); }},
      {"job-chunk", true, false,
       [](Config& c, const std::string& v) {
         const auto n = parse_number<std::uint32_t>(v);
         if (!n || *n == 0 || *n > 10'000) fail("job-chunk", v, "an integer from 1 to 10000");
         c.job_chunk = *n;
       }},
      {"job-retention", true, false,
       [](Config& c, const std::string& v) { c.job_retention_ms = duration_value("job-retention", v, true); }},
      {"allow-private-networks", false, false,
       [](Config& c, const std::string&) { c.allow_private_networks = true; }},
      {"allow-cidr", true, true,
       [](Config& c, const std::string& v) {
         auto cidr = parse_cidr(v);
         if (!cidr) fail("allow-cidr", v, "an address range such as 10.0.0.0/8");
         c.allow_cidrs.push_back(*cidr);
       }},
      {"log-level", true, false,
       [](Config& c, const std::string& v) {
         if (v == "debug") c.log_level = LogLevel::debug;
         else if (v == "info") c.log_level = LogLevel::info;
         else if (v == "warn") c.log_level = LogLevel::warn;
         else if (v == "error") c.log_level = LogLevel::error;
         else fail("log-level", v, "debug, info, warn or error");
       }},
      {"dev", false, false, [](Config& c, const std::string&) { c.dev = true; }},
      {"cluster-etcd", true, false,
       [](Config& c, const std::string& v) {
         c.cluster.etcd_endpoints.clear();
         for (const std::string& item : comma_items(v)) {
           if (item.empty()) fail("cluster-etcd", v, "etcd client URLs separated by commas, such as http://etcd-0:2379");
           c.cluster.etcd_endpoints.push_back(base_url_value("cluster-etcd", item));
         }
       }},
      {"advertise", true, false,
       [](Config& c, const std::string& v) { c.cluster.advertise = base_url_value("advertise", v); }},
      {"shard", true, false,
       [](Config& c, const std::string& v) {
         if (!is_shard_name(v)) fail("shard", v, "1-63 characters of [a-z0-9-]");
         c.cluster.shard = v;
       }},
      {"cluster-prefix", true, false,
       [](Config& c, const std::string& v) {
         const bool fits = v.size() >= 2 && v.size() <= 128 && v.front() == '/' && v.back() == '/' &&
                           std::all_of(v.begin(), v.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; });
         if (!fits) fail("cluster-prefix", v, "a key prefix that starts and ends with '/', such as /relay/");
         c.cluster.prefix = v;
       }},
      {"cluster-timeout", true, false,
       [](Config& c, const std::string& v) { c.cluster.timeout_ms = duration_value("cluster-timeout", v); }},
      {"cluster-etcd-ca", true, false,
       [](Config& c, const std::string& v) { c.cluster.etcd_ca_file = file_value("cluster-etcd-ca", v); }},
      {"cluster-etcd-cert", true, false,
       [](Config& c, const std::string& v) { c.cluster.etcd_cert_file = file_value("cluster-etcd-cert", v); }},
      {"cluster-etcd-key", true, false,
       [](Config& c, const std::string& v) { c.cluster.etcd_key_file = file_value("cluster-etcd-key", v); }},
      {"cluster-etcd-user", true, false,
       [](Config& c, const std::string& v) {
         const bool fits = !v.empty() && v.size() <= 256 &&
                           std::all_of(v.begin(), v.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; });
         if (!fits) fail("cluster-etcd-user", v, "an etcd user name (printable, no spaces)");
         c.cluster.etcd_user = v;
       }},
      {"cluster-etcd-password-file", true, false,
       [](Config& c, const std::string& v) {
         c.cluster.etcd_password_file = file_value("cluster-etcd-password-file", v);
       }},
  };
}

std::string env_name(const std::string& flag) {
  std::string name = "RELAY_";
  for (char ch : flag) name.push_back(ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  return name;
}

void apply_env(Config& config, const Flag& flag, const std::string& value) {
  if (!flag.takes_value) {
    const auto on = parse_bool(value);
    if (!on) throw ConfigError("invalid value '" + printable(value) + "' for " + env_name(flag.name) + ": expected true or false");
    if (*on) flag.apply(config, value);
    return;
  }
  if (!flag.repeatable) {
    flag.apply(config, value);
    return;
  }
  // Repeatable flags take a comma-separated list from the environment.
  for (const std::string& item : comma_items(value)) {
    if (!item.empty()) flag.apply(config, item);
  }
}

// A secured etcd: the TLS files belong to https:// endpoints and are checked now, a client
// certificate comes with its key, a user with a password file (read now).
void check_etcd_security(ClusterConfig& cluster) {
  if (cluster.etcd_cert_file.empty() != cluster.etcd_key_file.empty()) {
    throw ConfigError("--cluster-etcd-cert and --cluster-etcd-key go together: a client certificate and its key");
  }
  if (cluster.etcd_tls_files()) {
    for (const std::string& url : cluster.etcd_endpoints) {
      if (!url.starts_with("https://")) {
        throw ConfigError("--cluster-etcd-ca, --cluster-etcd-cert and --cluster-etcd-key are for https:// endpoints, and " +
                          printable(url) + " is not one");
      }
    }
  }
  if (!cluster.etcd_ca_file.empty()) check_pem_certificates("cluster-etcd-ca", cluster.etcd_ca_file);
  if (!cluster.etcd_cert_file.empty()) {
    check_pem_key_pair("cluster-etcd-cert", cluster.etcd_cert_file, "cluster-etcd-key", cluster.etcd_key_file);
  }
  if (cluster.etcd_user.empty() != cluster.etcd_password_file.empty()) {
    throw ConfigError("--cluster-etcd-user and --cluster-etcd-password-file go together: the user's password is read "
                      "from the file (never given on the command line)");
  }
  if (!cluster.etcd_password_file.empty()) {
    cluster.etcd_password = read_secret_file("cluster-etcd-password-file", cluster.etcd_password_file);
  }
}

// Cluster flags only make sense together: the advertise URL and an admin key (shards call each
// other with it) are required, and the shard name defaults to the host name.
void check_cluster(Config& config) {
  ClusterConfig& cluster = config.cluster;
  if (!cluster.enabled()) {
    if (!cluster.advertise.empty() || !cluster.shard.empty() || cluster.etcd_tls_files() ||
        !cluster.etcd_user.empty() || !cluster.etcd_password_file.empty()) {
      throw ConfigError("--advertise, --shard and the --cluster-etcd-* flags need --cluster-etcd (cluster mode)");
    }
    return;
  }
  check_etcd_security(cluster);
  if (cluster.advertise.empty()) {
    throw ConfigError("cluster mode needs --advertise URL: where the other shards reach this one's API");
  }
  const bool has_admin_key = std::any_of(config.api_keys.begin(), config.api_keys.end(),
                                         [](const ApiKey& k) { return k.scope == ApiScope::admin; });
  if (!has_admin_key) {
    throw ConfigError("cluster mode needs an --api-key admin:KEY, the same on every shard: shards call each other with it");
  }
  if (cluster.shard.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !is_shard_name(host)) {
      throw ConfigError("the host name '" + printable(host) +
                        "' is not a shard name (1-63 characters of [a-z0-9-]): give --shard NAME");
    }
    cluster.shard = host;
  }
}

}  // namespace

Config parse_config(const std::vector<std::string>& args, const std::map<std::string, std::string>& env, bool& help) {
  help = false;
  const std::vector<Flag> known = flags();
  auto find_flag = [&](const std::string& name) -> const Flag* {
    for (const Flag& f : known) {
      if (f.name == name) return &f;
    }
    return nullptr;
  };

  // Collect flags first so that flags win over the environment, whatever their order.
  std::vector<std::pair<const Flag*, std::string>> given;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return Config{};
    }
    if (arg.rfind("--", 0) != 0) throw ConfigError("unexpected argument '" + printable(arg) + "' (see --help)");
    const auto eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const Flag* flag = find_flag(name);
    if (flag == nullptr) throw ConfigError("unknown flag --" + printable(name) + " (see --help)");
    std::string value;
    if (flag->takes_value) {
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        throw ConfigError("flag --" + printable(name) + " needs a value");
      }
    } else if (eq != std::string::npos) {
      throw ConfigError("flag --" + printable(name) + " takes no value");
    }
    given.emplace_back(flag, value);
  }

  Config config;
  for (const Flag& flag : known) {
    const bool on_command_line =
        std::any_of(given.begin(), given.end(), [&](const auto& g) { return g.first == &flag; });
    if (on_command_line) continue;
    if (auto it = env.find(env_name(flag.name)); it != env.end()) apply_env(config, flag, it->second);
  }
  for (const auto& [flag, value] : given) flag->apply(config, value);

  if (config.retry_initial_ms > config.retry_max_delay_ms) {
    throw ConfigError("--retry-initial must not exceed --retry-max-delay");
  }
  if (config.api_keys.empty() && !config.insecure_no_auth && !config.dev) {
    throw ConfigError("no API key configured: give --api-key SCOPE:KEY (or --insecure-no-auth for local experiments)");
  }
  check_cluster(config);
  return config;
}

std::string usage() {
  return R"(usage: relayd [flags]   (every flag is also RELAY_<FLAG> in the environment; flags win)
  --listen HOST:PORT          listen address (127.0.0.1:8080; port 0 picks a free port)
  --data-dir DIR              RocksDB directory (./data)
  --api-key SCOPE:KEY         repeatable; scope admin or ingest (env: comma-separated)
  --insecure-no-auth          run without API keys (development only)
  --dev                       development mode: generated admin key kept in DATA-DIR/dev-api-key, private networks allowed
  --durability fsync|buffered fsync every commit (default) or leave it to the OS
  --retry-initial 5s  --retry-max-delay 10m  --retry-window 1h
  --attempt-timeout 15s  --connect-timeout 5s  --max-in-flight 4096 (global)
  --ca-file PEM               trust these CAs for TLS deliveries instead of the system's
  --max-body 1MiB             largest accepted request body
  --max-body-memory 256MiB    request bodies in flight together; beyond it requests answer 503
  --max-connections 10000     open ingress connections; at the cap the longest idle one is closed
  --max-pending-deliveries N  ingest answers 429 while N deliveries are unfinished (0: no bound, default)
  --retention 72h  --dlq-retention 7d  --retention-interval 30s  --shutdown-grace 10s
  --circuit-probe-interval 30s  how often an open circuit lets one probe attempt through
  --disable-after 5d          disable a subscription whose attempts have all failed this long (0s: never)
  --job-chunk 200             events or dead letters a replay or DLQ-retry job handles per commit
  --job-retention 7d          remove finished jobs this long after they finished (0s: keep them)
  --allow-private-networks    deliver to loopback/private addresses
  --allow-cidr CIDR           repeatable; allow deliveries to these addresses
  --log-level debug|info|warn|error
cluster mode (docs/cluster.md):
  --cluster-etcd URL[,URL...] etcd client URLs; turns cluster mode on
  --advertise URL             where the other shards reach this shard's API (required in cluster mode)
  --shard NAME                this shard's name, [a-z0-9-]{1,63} (the host name)
  --cluster-prefix /relay/    this cluster's keys in etcd
  --cluster-timeout 2s        how long a call to etcd (all its tries) or to another shard may take
  --cluster-etcd-ca PEM       CAs that etcd's certificate must chain to (https:// endpoints; default: the system's)
  --cluster-etcd-cert PEM  --cluster-etcd-key PEM   client certificate and key for etcd's --client-cert-auth
  --cluster-etcd-user NAME    authenticate to etcd as this user
  --cluster-etcd-password-file FILE   that user's password (never given as a flag)
)";
}

}  // namespace relay
