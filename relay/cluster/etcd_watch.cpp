#include "relay/cluster/etcd_watch.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "relay/cluster/etcd_codec.h"

namespace relay::cluster {
namespace {

namespace asio = boost::asio;
using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kMinBackoff = 50ms;
constexpr std::chrono::milliseconds kMaxBackoff = 2s;
// One message is one revision's events; etcd refuses requests over 1.5 MiB by default, so a
// message this large is a broken stream, not a large transaction.
constexpr std::size_t kMaxMessageBytes = 64 << 20;
constexpr std::size_t kMaxErrorBytes = 4096;
// A member that vanishes without closing the connection is noticed after 5 + 3 x 2 s.
constexpr long kKeepIdleSeconds = 5;
constexpr long kKeepIntervalSeconds = 2;
constexpr int kKeepCount = 3;

struct EasyCleanup {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct SlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct MultiCleanup {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using EasyHandle = std::unique_ptr<CURL, EasyCleanup>;
using HeaderList = std::unique_ptr<curl_slist, SlistFree>;
using MultiHandle = std::unique_ptr<CURLM, MultiCleanup>;

bool append(HeaderList& list, const char* line) {
  curl_slist* head = curl_slist_append(list.get(), line);
  if (head == nullptr) return false;
  static_cast<void>(list.release());
  list.reset(head);
  return true;
}

int on_sockopt(void*, curl_socket_t fd, curlsocktype purpose) {
  if (purpose == CURLSOCKTYPE_IPCXN) {
    const int count = kKeepCount;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);  // best effort
  }
  return CURL_SOCKOPT_OK;
}

}  // namespace

class EtcdWatch::Impl {
 public:
  Impl(asio::io_context& home, std::shared_ptr<EtcdEndpoints> endpoints, std::shared_ptr<EtcdSession> session,
       EtcdTls tls, std::chrono::milliseconds timeout, std::string prefix, std::int64_t from_revision,
       ClusterStore::WatchCallback on_batch)
      : home_(home),
        endpoints_(std::move(endpoints)),
        session_(std::move(session)),
        tls_(std::move(tls)),
        timeout_(timeout),
        prefix_(std::move(prefix)),
        next_revision_(from_revision),
        sink_(std::make_shared<Sink>(Sink{std::move(on_batch)})),
        weak_sink_(sink_) {
    if (endpoints_->urls().empty()) throw std::invalid_argument("etcd watch: no endpoints");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
    multi_.reset(curl_multi_init());
    if (multi_ == nullptr) {
      curl_global_cleanup();
      throw std::runtime_error("curl_multi_init failed");
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Impl() {
    stop_.store(true);
    curl_multi_wakeup(multi_.get());
    thread_.join();
    multi_.reset();
    curl_global_cleanup();
  }

 private:
  // The callback, owned on the home thread; handlers posted by the watch thread hold it weakly,
  // so that none runs once the watch is destroyed.
  struct Sink {
    ClusterStore::WatchCallback on_batch;
  };

  // One connection's state, shared with curl's write callback.
  struct Stream {
    Impl* owner = nullptr;
    CURL* easy = nullptr;
    std::size_t endpoint = 0;
    long status = 0;           // HTTP status, once known
    std::string pending;       // bytes after the last complete message
    std::string error_body;    // the start of a non-200 answer
    bool established = false;  // etcd answered "created"
    bool canceled = false;     // etcd ended the watch for a reason other than compaction
    bool token_refused = false;  // cancelled for its token: the next attempt authenticates again
    bool compacted = false;
    std::string failure;  // why the stream ended, when a message said so
    std::string token;    // the token the stream was opened with
  };

  // An answer to a unary call (authentication), collected by on_collect.
  struct Reply {
    std::string body;
  };

  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  // Watch thread.
  void run() {
    const std::size_t count = endpoints_->urls().size();
    std::size_t index = endpoints_->preferred() % count;
    std::size_t failed_in_a_row = 0;
    std::chrono::milliseconds backoff = kMinBackoff;
    while (!stopping()) {
      Stream s;
      s.owner = this;
      s.endpoint = index;
      const bool fresh_token = session_->needs_token();
      if (!fresh_token || authenticate(index, s.failure)) open(s);
      if (stopping()) return;
      if (s.compacted) {
        WatchBatch batch;
        batch.compacted = true;
        deliver(std::move(batch));
        return;
      }
      // A stream etcd cancels (auth, a bad range) would be cancelled again at once: only a
      // stream that ended otherwise resets the backoff.
      const bool healthy = s.established && !s.canceled;
      if (s.token_refused && !fresh_token) {
        // Tokens expire: not a failure of etcd, and the same endpoint serves the next attempt
        // (a token refused right after authenticating is a failure like any other).
        wait(kMinBackoff);
        continue;
      }
      if (healthy) {
        failed_in_a_row = 0;
        backoff = kMinBackoff;
      } else if (!s.established && ++failed_in_a_row >= count) {
        endpoints_->unreachable("watch: " + s.failure);
        failed_in_a_row = 0;
      }
      index = (index + 1) % count;
      wait(backoff);
      if (!healthy) backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

  // Watch thread: the options every transfer to etcd shares (TLS, the token). `headers` and
  // `error_buffer` must outlive the transfer.
  bool prepare(CURL* easy, HeaderList& headers, const std::string& url, const std::string& body,
               const std::string& token, char* error_buffer) {
    if (!append(headers, "Content-Type: application/json") || !append(headers, "Grpc-Metadata-hasleader: true") ||
        !append(headers, "Expect:") || (!token.empty() && !append(headers, ("Authorization: " + token).c_str()))) {
      return false;
    }
    bool ok = true;
    const auto set = [&](CURLoption option, auto value) {
      ok = ok && curl_easy_setopt(easy, option, value) == CURLE_OK;
    };
    set(CURLOPT_URL, url.c_str());
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_PROTOCOLS_STR, "http,https");
    set(CURLOPT_PROXY, "");
    set(CURLOPT_SSL_VERIFYPEER, 1L);
    set(CURLOPT_SSL_VERIFYHOST, 2L);
    if (!tls_.ca_file.empty()) {
      set(CURLOPT_CAINFO, tls_.ca_file.c_str());
      set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
    }
    if (!tls_.cert_file.empty()) {
      set(CURLOPT_SSLCERT, tls_.cert_file.c_str());
      set(CURLOPT_SSLKEY, tls_.key_file.c_str());
    }
    set(CURLOPT_HTTPHEADER, headers.get());
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    set(CURLOPT_POSTFIELDS, body.c_str());
    set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(timeout_.count(), 1)));
    set(CURLOPT_ERRORBUFFER, error_buffer);
    return ok;
  }

  // Watch thread: runs `easy` until it ends (its result), the watch is stopped or `deadline`
  // passes (nullopt), the deadline counting only while `*established` is false, when given.
  std::optional<CURLcode> perform(CURL* easy, Steady::time_point deadline, const bool* established) {
    if (curl_multi_add_handle(multi_.get(), easy) != CURLM_OK) return CURLE_FAILED_INIT;
    std::optional<CURLcode> result;
    while (!stopping() && !result) {
      int running = 0;
      curl_multi_perform(multi_.get(), &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
        if (msg->msg == CURLMSG_DONE) result = msg->data.result;
      }
      if (result) break;
      const bool bounded = established == nullptr || !*established;
      const Steady::time_point now = Steady::now();
      if (bounded && now >= deadline) break;
      // Woken early by curl_multi_wakeup when the watch is destroyed.
      const auto until_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
      const int wait_ms = bounded ? static_cast<int>(std::clamp<std::int64_t>(until_deadline, 1, 1000)) : 1000;
      curl_multi_poll(multi_.get(), nullptr, 0, wait_ms, nullptr);
    }
    curl_multi_remove_handle(multi_.get(), easy);
    return result;
  }

  // Watch thread: authenticates at endpoint `index` and puts the token into the session (or
  // learns that etcd has authentication off). False with `failure` set when there is no token.
  bool authenticate(std::size_t index, std::string& failure) {
    EasyHandle easy(curl_easy_init());
    HeaderList headers;
    char error_buffer[CURL_ERROR_SIZE] = {};
    const std::string url = endpoints_->urls()[index] + "/v3/auth/authenticate";
    const EtcdCredentials& credentials = session_->credentials();
    const std::string body = etcd::authenticate_request(credentials.user, credentials.password);
    Reply reply;
    if (easy == nullptr || !prepare(easy.get(), headers, url, body, std::string(), error_buffer) ||
        curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, &Impl::on_collect) != CURLE_OK ||
        curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, static_cast<void*>(&reply)) != CURLE_OK) {
      failure = "could not set up a curl transfer";
      return false;
    }
    const std::optional<CURLcode> result = perform(easy.get(), Steady::now() + timeout_, nullptr);
    long status = 0;
    curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (!result || *result != CURLE_OK || status == 0 || status >= 500) {
      failure = "authentication: ";
      if (!result) {
        failure += "no answer within " + std::to_string(timeout_.count()) + " ms";
      } else if (*result != CURLE_OK) {
        failure += error_buffer[0] != '\0' ? std::string(error_buffer) : std::string(curl_easy_strerror(*result));
      } else {
        failure += "HTTP " + std::to_string(status) + " " + etcd::parse_error_response(reply.body).message;
      }
      return false;
    }
    if (status == 200) {
      Result<std::string> token = etcd::parse_authenticate_response(reply.body);
      if (!token) {
        failure = token.error().message;
        return false;
      }
      session_->set(std::move(*token));
      return true;
    }
    const etcd::GatewayError error = etcd::parse_error_response(reply.body);
    if (etcd::authentication_off(error.message)) {
      session_->set(std::string());
      return true;
    }
    failure = "authentication as user '" + credentials.user + "' refused: " + error.message;
    endpoints_->refused(failure);
    return false;
  }

  static std::size_t on_collect(char* data, std::size_t size, std::size_t count, void* userp) {
    auto* reply = static_cast<Reply*>(userp);
    const std::size_t n = size * count;
    if (reply->body.size() + n > kMaxErrorBytes) return 0;
    reply->body.append(data, n);
    return n;
  }

  // Watch thread: runs one stream until it ends, the watch is stopped, or etcd does not answer
  // "created" within the timeout.
  void open(Stream& s) {
    EasyHandle easy(curl_easy_init());
    HeaderList headers;
    s.token = session_->token();
    const std::string url = endpoints_->urls()[s.endpoint] + "/v3/watch";
    const std::string body = etcd::watch_create_request(prefix_, next_revision_);
    char error_buffer[CURL_ERROR_SIZE] = {};
    s.easy = easy.get();
    bool ok = easy != nullptr && prepare(easy.get(), headers, url, body, s.token, error_buffer);
    const auto set = [&](CURLoption option, auto value) {
      ok = ok && curl_easy_setopt(easy.get(), option, value) == CURLE_OK;
    };
    set(CURLOPT_TCP_KEEPALIVE, 1L);
    set(CURLOPT_TCP_KEEPIDLE, kKeepIdleSeconds);
    set(CURLOPT_TCP_KEEPINTVL, kKeepIntervalSeconds);
    set(CURLOPT_SOCKOPTFUNCTION, &on_sockopt);
    set(CURLOPT_WRITEFUNCTION, &Impl::on_write);
    set(CURLOPT_WRITEDATA, static_cast<void*>(&s));
    if (!ok) {
      s.failure = "could not set up a curl transfer";
      return;
    }
    const std::optional<CURLcode> result = perform(easy.get(), Steady::now() + timeout_, &s.established);
    if (!result && s.failure.empty() && !stopping()) {
      s.failure = "no watch created within " + std::to_string(timeout_.count()) + " ms";
    }
    if (!s.failure.empty() || s.compacted || stopping()) return;
    if (s.status != 0 && s.status != 200) {
      const etcd::GatewayError error = etcd::parse_error_response(s.error_body);
      s.failure = "HTTP " + std::to_string(s.status) + ": " + error.message;
    } else if (result && *result != CURLE_OK) {
      s.failure = error_buffer[0] != '\0' ? std::string(error_buffer) : std::string(curl_easy_strerror(*result));
    } else {
      s.failure = "the watch stream ended";
    }
  }

  // curl's write callback on the watch thread; returning anything but `size * count` ends the
  // transfer.
  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* userp) {
    auto* s = static_cast<Stream*>(userp);
    const std::size_t n = size * count;
    try {
      if (s->status == 0) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
      if (s->status != 200) {
        s->error_body.append(data, std::min(n, kMaxErrorBytes - std::min(kMaxErrorBytes, s->error_body.size())));
        return n;
      }
      if (s->owner->stopping()) return 0;
      // Messages are separated by newlines; JSON strings escape theirs.
      std::string_view chunk(data, n);
      while (!chunk.empty()) {
        const std::size_t newline = chunk.find('\n');
        if (newline == std::string_view::npos) {
          if (s->pending.size() + chunk.size() > kMaxMessageBytes) {
            s->failure = "a watch message over 64 MiB";
            return 0;
          }
          s->pending.append(chunk);
          break;
        }
        s->pending.append(chunk.substr(0, newline));
        chunk.remove_prefix(newline + 1);
        const bool go_on = s->owner->on_message(*s, s->pending);
        s->pending.clear();
        if (!go_on) return 0;
      }
      return n;
    } catch (...) {
      s->failure = "out of memory";
      return 0;
    }
  }

  // Watch thread. False ends the stream.
  bool on_message(Stream& s, std::string_view line) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return true;
    Result<etcd::WatchMessage> message = etcd::parse_watch_message(line);
    if (!message) {
      s.failure = message.error().message;
      return false;
    }
    if (message->error) {
      s.failure = message->reason;
      return false;
    }
    if (message->canceled) {
      if (message->compact_revision > 0) {
        s.compacted = true;
      } else {
        s.canceled = true;
        s.failure = "etcd canceled the watch: " + message->reason;
        // The next attempt authenticates again.
        if (session_->authenticates() && etcd::token_refused(0, message->reason)) {
          s.token_refused = true;
          session_->refused(s.token);
        }
      }
      return false;
    }
    if (message->created) {
      s.established = true;
      endpoints_->answered(s.endpoint);
      // A watch "from now" is from the revision after the one it was created at, so that a
      // reconnection does not skip what changed while it was away.
      if (next_revision_ <= 0) next_revision_ = message->header_revision + 1;
    }
    WatchBatch batch;
    for (WatchEvent& event : message->events) {
      // After a reconnection etcd starts at next_revision_; nothing older is delivered twice.
      if (event.kv.mod_revision < next_revision_) continue;
      batch.events.push_back(std::move(event));
    }
    if (!batch.events.empty()) {
      next_revision_ = batch.events.back().kv.mod_revision + 1;
      deliver(std::move(batch));
    }
    return true;
  }

  // Watch thread: hands a batch to the home thread, in order.
  void deliver(WatchBatch batch) {
    asio::post(home_, [sink = weak_sink_, batch = std::move(batch)]() mutable {
      if (const std::shared_ptr<Sink> s = sink.lock()) s->on_batch(std::move(batch));
    });
  }

  // Watch thread: sleeps, woken early by destruction.
  void wait(std::chrono::milliseconds duration) {
    const Steady::time_point until = Steady::now() + duration;
    while (!stopping()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Steady::now()).count();
      if (left <= 0) return;
      curl_multi_poll(multi_.get(), nullptr, 0, static_cast<int>(left), nullptr);
    }
  }

  asio::io_context& home_;
  const std::shared_ptr<EtcdEndpoints> endpoints_;
  const std::shared_ptr<EtcdSession> session_;
  const EtcdTls tls_;
  const std::chrono::milliseconds timeout_;
  const std::string prefix_;
  std::int64_t next_revision_;  // watch thread only
  std::shared_ptr<Sink> sink_;  // home thread only
  const std::weak_ptr<Sink> weak_sink_;
  MultiHandle multi_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

EtcdWatch::EtcdWatch(asio::io_context& home, std::shared_ptr<EtcdEndpoints> endpoints,
                     std::shared_ptr<EtcdSession> session, EtcdTls tls, std::chrono::milliseconds timeout,
                     std::string prefix, std::int64_t from_revision, ClusterStore::WatchCallback on_batch)
    : impl_(std::make_unique<Impl>(home, std::move(endpoints), std::move(session), std::move(tls), timeout,
                                   std::move(prefix), from_revision, std::move(on_batch))) {}

EtcdWatch::~EtcdWatch() = default;

}  // namespace relay::cluster
