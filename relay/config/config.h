#pragma once
// relayd's configuration: flags of spec section 1, each also settable as RELAY_<FLAG>
// (flags win). The one place where configuration is parsed and validated.

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "relay/core/cidr.h"
#include "relay/core/logger.h"

namespace relay {

enum class ApiScope { ingest, admin };

struct ApiKey {
  ApiScope scope;
  std::string key;
};

// Cluster mode (docs/cluster.md): several relayd shards coordinated by etcd. On when
// etcd_endpoints is not empty.
struct ClusterConfig {
  std::vector<std::string> etcd_endpoints;  // --cluster-etcd URL[,URL...]: etcd's client URLs
  std::string advertise;                    // --advertise URL: where the other shards reach this one's API
  std::string shard;                        // --shard NAME ([a-z0-9-]{1,63}); default: the host name
  std::string prefix = "/relay/";           // --cluster-prefix: this cluster's keys in etcd
  std::int64_t timeout_ms = 2'000;          // --cluster-timeout: for etcd and for the other shards
  // A secured etcd (https:// endpoints). Files are checked at startup (readable, PEM, the key
  // matches the certificate); curl reads them again for each new connection.
  std::string etcd_ca_file;    // --cluster-etcd-ca: CAs for etcd's server certificate; empty: the system's
  std::string etcd_cert_file;  // --cluster-etcd-cert: client certificate (etcd's --client-cert-auth)
  std::string etcd_key_file;   // --cluster-etcd-key: its private key
  std::string etcd_user;       // --cluster-etcd-user: etcd user relay authenticates as; empty: none
  std::string etcd_password_file;  // --cluster-etcd-password-file: the user's password, never on the command line
  std::string etcd_password;       // read from it at startup

  bool etcd_tls_files() const { return !etcd_ca_file.empty() || !etcd_cert_file.empty() || !etcd_key_file.empty(); }

  bool enabled() const { return !etcd_endpoints.empty(); }
};

struct Config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  std::string data_dir = "./data";
  std::vector<ApiKey> api_keys;
  bool insecure_no_auth = false;
  bool sync_writes = true;  // --durability fsync (default) or buffered
  std::int64_t retry_initial_ms = 5'000;
  std::int64_t retry_max_delay_ms = 600'000;
  std::int64_t retry_window_ms = 3'600'000;
  std::int64_t attempt_timeout_ms = 15'000;
  std::int64_t connect_timeout_ms = 5'000;
  std::string ca_file;  // --ca-file: CAs trusted for TLS deliveries instead of the system's; empty: the system's
  std::uint32_t max_in_flight = 4096;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_body_memory = 256 << 20;    // request bodies being read or handled, together
  std::uint32_t max_connections = 10'000;     // open ingress connections
  std::uint64_t max_pending_deliveries = 0;   // ingest answers 429 from this many unfinished deliveries; 0: off
  std::int64_t retention_ms = 72 * 3'600'000LL;
  std::int64_t dlq_retention_ms = 7 * 86'400'000LL;
  std::int64_t retention_interval_ms = 30'000;  // pause between the cleaner's passes
  std::int64_t shutdown_grace_ms = 10'000;
  std::int64_t circuit_probe_interval_ms = 30'000;  // an open circuit's probe period
  // A subscription whose attempts have all failed this long is disabled; 0: never. Each
  // subscription may set its own (disable_after).
  std::int64_t disable_after_ms = 5 * 86'400'000LL;
  std::size_t job_chunk = 200;  // events or dead letters a replay / DLQ-retry job handles per commit
  // Finished jobs (done, failed, cancelled) are removed this long after they finished; 0: never.
  std::int64_t job_retention_ms = 7 * 86'400'000LL;
  bool allow_private_networks = false;
  std::vector<Cidr> allow_cidrs;
  LogLevel log_level = LogLevel::info;
  // Development mode: without --api-key, an admin key is generated once, kept in
  // <data-dir>/dev-api-key and printed; private networks are allowed.
  bool dev = false;
  ClusterConfig cluster;
};

// Thrown for any bad flag or value; what() is the one line relayd prints before exiting 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses argv (without argv[0]) and the environment (NAME=VALUE strings). Throws ConfigError.
// `help` is set when --help was given; the caller prints usage() and exits 0.
Config parse_config(const std::vector<std::string>& args, const std::map<std::string, std::string>& env, bool& help);

std::string usage();

}  // namespace relay
