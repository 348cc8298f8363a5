// Over 450 lines, on purpose: curl's socket, timer, open/close-socket and write callbacks and the
// transfer lifecycle all act on one Impl's state (watches, sockets we own, transfers, idle
// handles) on one thread; apart, that state would have to be shared between files. What is pure
// (outcome classification) lives in attempt_classification.
#include "relay/delivery/egress_client.h"

#include <curl/curl.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "relay/delivery/attempt_classification.h"

namespace relay {
namespace {

using Steady = std::chrono::steady_clock;

// Idle easy handles kept for reuse; each holds buffers worth keeping warm between attempts.
// With 64, a drain that keeps hundreds of attempts running spent 2.6% of relayd's CPU creating
// and destroying handles; 512 idle ones did not move its resident memory measurably.
constexpr std::size_t kMaxIdleEasyHandles = 512;

std::int64_t elapsed_ms(Steady::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - since).count();
}

bool has_header(const std::vector<std::pair<std::string, std::string>>& headers,
                const char* name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return strcasecmp(h.first.c_str(), name) == 0; });
}

// A header line with CR, LF or NUL would let a subscription's static headers smuggle extra
// headers or a second request onto the wire; curl sends slist entries verbatim.
bool header_is_safe(const std::pair<std::string, std::string>& header) {
  const auto bad = [](char c) { return c == '\r' || c == '\n' || c == '\0'; };
  return !header.first.empty() && header.first.find(':') == std::string::npos &&
         std::none_of(header.first.begin(), header.first.end(), bad) &&
         std::none_of(header.second.begin(), header.second.end(), bad);
}

struct EasyCleanup {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct SlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
// An easy handle owned here; one still in the multi handle must be removed from it first.
using EasyHandle = std::unique_ptr<CURL, EasyCleanup>;
using HeaderList = std::unique_ptr<curl_slist, SlistFree>;

// curl_slist_append returns the list's head, or null (leaving the list as it was) when out of
// memory.
bool append(HeaderList& list, const std::string& line) {
  curl_slist* head = curl_slist_append(list.get(), line.c_str());
  if (head == nullptr) return false;
  static_cast<void>(list.release());
  list.reset(head);
  return true;
}

}  // namespace

class EgressClient::Impl : public std::enable_shared_from_this<EgressClient::Impl> {
 public:
  Impl(boost::asio::io_context& io, EgressOptions options);
  ~Impl();

  void send(EgressRequest request, Callback done);
  void cancel_all();
  void shutdown();

 private:
  // A socket curl asked us to watch. The fd belongs to curl (or to our open/close socket
  // callbacks); the descriptor only borrows it and is always release()d, never closed.
  struct Watch {
    explicit Watch(boost::asio::io_context& io, curl_socket_t s) : descriptor(io), fd(s) {}
    ~Watch() {
      if (descriptor.is_open()) descriptor.release();
    }
    boost::asio::posix::stream_descriptor descriptor;
    curl_socket_t fd;
    int wanted = 0;  // CURL_POLL_IN / CURL_POLL_OUT / CURL_POLL_INOUT
    bool reading = false;
    bool writing = false;
    bool active = true;  // false once curl stopped caring; late completions are ignored
  };

  // One attempt in flight.
  struct Transfer {
    EasyHandle easy;
    Impl* owner = nullptr;
    EgressRequest request;
    Callback done;
    HeaderList headers;
    Steady::time_point started;
    std::string excerpt;
    std::size_t body_bytes = 0;
    bool body_over_cap = false;
    std::string blocked_reason;  // set when the guard refused an address
    char error_buffer[CURL_ERROR_SIZE] = {};
  };

  // curl callbacks (C linkage-compatible statics; they never throw).
  static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  static curl_socket_t on_open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* addr);
  static int on_close_socket(void* clientp, curl_socket_t fd);
  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* userp);

  int watch(curl_socket_t fd, int what);
  void idle(curl_socket_t fd);
  void forget(curl_socket_t fd);
  void arm(const std::shared_ptr<Watch>& w);
  void on_ready(const std::shared_ptr<Watch>& w, int direction, boost::system::error_code ec);
  void start_timer(long timeout_ms);
  void arm_timer(Steady::time_point due);
  void on_timer_due();
  void socket_action(curl_socket_t fd, int mask);
  void drain_messages();
  // Options that never change, once per easy handle; configure() sets the per-attempt ones.
  bool configure_handle(CURL* easy);
  bool configure(Transfer& t);
  static bool set_method(CURL* easy, const EgressRequest& request);
  EgressResponse make_response(Transfer& t, CURLcode result);
  void release(std::unique_ptr<Transfer> t);
  void fail_now(Callback done, std::string error, Steady::time_point started);

  boost::asio::io_context& io_;
  EgressOptions options_;
  DestinationGuard guard_;
  CURLM* multi_ = nullptr;
  boost::asio::steady_timer timer_;
  std::optional<Steady::time_point> timer_due_;  // when curl wants CURL_SOCKET_TIMEOUT, if at all
  bool timer_armed_ = false;
  Steady::time_point timer_armed_at_{};
  bool kick_posted_ = false;
  std::unordered_map<curl_socket_t, std::shared_ptr<Watch>> watches_;
  std::unordered_set<curl_socket_t> own_sockets_;  // opened by on_open_socket, not yet closed
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::vector<EasyHandle> idle_easies_;
  bool shut_down_ = false;
};

EgressClient::Impl::Impl(boost::asio::io_context& io, EgressOptions options)
    : io_(io), options_(std::move(options)), guard_(options_.destinations), timer_(io) {
  // Thread-safe and reference-counted since curl 7.84.
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    throw std::runtime_error("curl_global_init failed");
  }
  multi_ = curl_multi_init();
  if (multi_ == nullptr) {
    curl_global_cleanup();
    throw std::runtime_error("curl_multi_init failed");
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  if (options_.max_connections_per_host > 0) {
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(options_.max_connections_per_host));
  }
  if (options_.max_cached_connections > 0) {
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_cached_connections));
  }
}

EgressClient::Impl::~Impl() { shutdown(); }

void EgressClient::Impl::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  timer_.cancel();
  for (auto& entry : transfers_) curl_multi_remove_handle(multi_, entry.first);
  transfers_.clear();
  idle_easies_.clear();
  // Closes the cached connections through on_close_socket, which still needs `this`.
  curl_multi_cleanup(multi_);
  multi_ = nullptr;
  for (auto& [fd, w] : watches_) {
    w->active = false;
    if (w->descriptor.is_open()) w->descriptor.release();
  }
  watches_.clear();
  curl_global_cleanup();
}

// --- socket and timer plumbing -------------------------------------------------------------

int EgressClient::Impl::on_socket(CURL*, curl_socket_t s, int what, void* userp, void*) {
  auto* self = static_cast<Impl*>(userp);
  try {
    if (what == CURL_POLL_REMOVE) {
      // A connection going back to curl's cache stays registered with the reactor until it is
      // closed: the next transfer on it then costs no epoll_ctl. Only for sockets we opened,
      // whose close we see; curl closes its other sockets itself.
      if (self->own_sockets_.count(s) != 0) {
        self->idle(s);
      } else {
        self->forget(s);
      }
      return 0;
    }
    return self->watch(s, what);
  } catch (...) {
    return -1;  // curl aborts the transfers using this socket
  }
}

int EgressClient::Impl::watch(curl_socket_t fd, int what) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) {
    auto w = std::make_shared<Watch>(io_, fd);
    boost::system::error_code ec;
    w->descriptor.assign(fd, ec);
    if (ec) return -1;
    it = watches_.emplace(fd, std::move(w)).first;
  }
  it->second->wanted = what;
  arm(it->second);
  return 0;
}

void EgressClient::Impl::idle(curl_socket_t fd) {
  if (auto it = watches_.find(fd); it != watches_.end()) it->second->wanted = 0;
}

void EgressClient::Impl::forget(curl_socket_t fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  it->second->active = false;
  // release() cancels the pending waits and takes the fd out of epoll without closing it.
  if (it->second->descriptor.is_open()) it->second->descriptor.release();
  watches_.erase(it);
}

void EgressClient::Impl::arm(const std::shared_ptr<Watch>& w) {
  std::weak_ptr<Impl> weak = weak_from_this();
  if ((w->wanted & CURL_POLL_IN) && !w->reading) {
    w->reading = true;
    w->descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                             [weak, w](boost::system::error_code ec) {
                               w->reading = false;
                               if (auto self = weak.lock()) self->on_ready(w, CURL_CSELECT_IN, ec);
                             });
  }
  if ((w->wanted & CURL_POLL_OUT) && !w->writing) {
    w->writing = true;
    w->descriptor.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                             [weak, w](boost::system::error_code ec) {
                               w->writing = false;
                               if (auto self = weak.lock()) self->on_ready(w, CURL_CSELECT_OUT, ec);
                             });
  }
}

void EgressClient::Impl::on_ready(const std::shared_ptr<Watch>& w, int direction,
                                  boost::system::error_code ec) {
  if (!w->active || shut_down_ || ec == boost::asio::error::operation_aborted) return;
  const int wanted_flag = direction == CURL_CSELECT_IN ? CURL_POLL_IN : CURL_POLL_OUT;
  if (!(w->wanted & wanted_flag)) return;  // curl changed its mind; it re-arms through on_socket
  socket_action(w->fd, ec ? CURL_CSELECT_ERR : direction);
  // A failed wait would fail again at once; curl has been told and will drop the socket.
  if (!ec && w->active && !shut_down_) arm(w);
}

int EgressClient::Impl::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<Impl*>(userp);
  try {
    self->start_timer(timeout_ms);
    return 0;
  } catch (...) {
    return -1;
  }
}

void EgressClient::Impl::start_timer(long timeout_ms) {
  // curl moves its timeout with almost every transfer it starts or finishes. Re-arming the
  // steady_timer each time costs a timerfd syscall, so the timer only ever moves earlier: when
  // it fires before curl's deadline it re-arms for that deadline, and a deadline curl withdrew
  // just makes one wake-up find nothing to do.
  if (timeout_ms < 0) {
    timer_due_.reset();
    return;
  }
  const Steady::time_point due = Steady::now() + std::chrono::milliseconds(timeout_ms);
  timer_due_ = due;
  if (timeout_ms == 0) {
    // Even "at once" goes through the io_context: curl must not be re-entered from here.
    if (!kick_posted_) {
      kick_posted_ = true;
      boost::asio::post(io_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          self->kick_posted_ = false;
          self->on_timer_due();
        }
      });
    }
    return;
  }
  if (!timer_armed_ || timer_armed_at_ > due) arm_timer(due);
}

void EgressClient::Impl::arm_timer(Steady::time_point due) {
  timer_armed_ = true;
  timer_armed_at_ = due;
  timer_.expires_at(due);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;  // re-armed (the new wait is pending) or shut down
    if (auto self = weak.lock()) {
      self->timer_armed_ = false;
      self->on_timer_due();
    }
  });
}

void EgressClient::Impl::on_timer_due() {
  if (shut_down_ || !timer_due_) return;
  if (Steady::now() < *timer_due_) {
    if (!timer_armed_ || timer_armed_at_ > *timer_due_) arm_timer(*timer_due_);
    return;
  }
  timer_due_.reset();
  socket_action(CURL_SOCKET_TIMEOUT, 0);
}

void EgressClient::Impl::socket_action(curl_socket_t fd, int mask) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, mask, &running);
  drain_messages();
}

void EgressClient::Impl::drain_messages() {
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    // msg dies with curl_multi_remove_handle; copy what we need first.
    CURL* easy = msg->easy_handle;
    const CURLcode result = msg->data.result;
    auto it = transfers_.find(easy);
    if (it == transfers_.end()) continue;
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers_.erase(it);
    EgressResponse response = make_response(*t, result);
    Callback done = std::move(t->done);
    release(std::move(t));
    boost::asio::post(io_, [done = std::move(done), response = std::move(response)]() mutable {
      done(std::move(response));
    });
  }
}

// --- per-transfer callbacks ----------------------------------------------------------------

curl_socket_t EgressClient::Impl::on_open_socket(void* clientp, curlsocktype purpose,
                                                 curl_sockaddr* addr) {
  auto* t = static_cast<Transfer*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  try {
    DestinationVerdict verdict = t->owner->guard_.check(&addr->addr, addr->addrlen);
    if (!verdict.allowed) {
      // curl tries the host's other addresses; the reason survives if all are refused.
      t->blocked_reason = std::move(verdict.reason);
      return CURL_SOCKET_BAD;
    }
  } catch (...) {
    return CURL_SOCKET_BAD;
  }
  const int fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  try {
    t->owner->own_sockets_.insert(fd);
  } catch (...) {
    ::close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd;
}

int EgressClient::Impl::on_close_socket(void* clientp, curl_socket_t fd) {
  auto* self = static_cast<Impl*>(clientp);
  try {
    self->forget(fd);  // before close: the fd number may be reused at once
    self->own_sockets_.erase(fd);
  } catch (...) {
  }
  return ::close(fd);
}

std::size_t EgressClient::Impl::on_write(char* data, std::size_t size, std::size_t count,
                                         void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const std::size_t n = size * count;
  const std::size_t keep_limit = t->owner->options_.max_kept_body;
  try {
    if (t->excerpt.size() < keep_limit) {
      t->excerpt.append(data, std::min(n, keep_limit - t->excerpt.size()));
    }
  } catch (...) {
    return 0;
  }
  t->body_bytes += n;
  if (t->body_bytes > t->owner->options_.max_read_body) {
    // Aborting closes the connection; the status already received still decides the outcome.
    t->body_over_cap = true;
    return 0;
  }
  return n;
}

// --- send / complete -----------------------------------------------------------------------

bool EgressClient::Impl::configure(Transfer& t) {
  CURL* e = t.easy.get();
  const EgressRequest& r = t.request;
  for (const auto& header : r.headers) {
    if (!append(t.headers, header.first + ": " + header.second)) return false;
  }
  // Suppress what curl would add on its own: Expect: 100-continue costs a round trip (or a
  // 1 s stall against servers that ignore it), and Accept / the form Content-Type are not ours.
  for (const char* name : {"Expect", "Accept", "Content-Type"}) {
    if (has_header(r.headers, name)) continue;
    if (!append(t.headers, std::string(name) + ":")) return false;
  }
  const char* body = r.body ? r.body->data() : "";
  const curl_off_t body_size = r.body ? static_cast<curl_off_t>(r.body->size()) : 0;

  bool ok = true;
  const auto set = [&](CURLoption option, auto value) {
    ok = ok && curl_easy_setopt(e, option, value) == CURLE_OK;
  };
  set(CURLOPT_URL, r.url.c_str());
  set(CURLOPT_PRIVATE, static_cast<void*>(&t));
  set(CURLOPT_ERRORBUFFER, t.error_buffer);
  // Over TLS, wait for an existing connection's ALPN to say whether it multiplexes (HTTP/2)
  // before opening another. Never for cleartext: HTTP/1.1 cannot multiplex, and waiting would
  // queue every attempt to a host behind one that hangs.
  const bool tls = r.url.size() >= 8 && (r.url.compare(0, 8, "https://") == 0 || r.url.compare(0, 8, "HTTPS://") == 0);
  set(CURLOPT_PIPEWAIT, tls ? 1L : 0L);
  set(CURLOPT_POSTFIELDSIZE_LARGE, body_size);
  set(CURLOPT_POSTFIELDS, body);
  set(CURLOPT_HTTPHEADER, t.headers.get());
  // Handles are configured for POST once (configure_handle); another method is set here, after
  // POSTFIELDS (which makes the request a POST again), and undone in release().
  if (r.method != HttpMethod::post) ok = ok && set_method(e, r);
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(r.timeout_ms, 0)));
  const std::int64_t connect_ms = r.connect_timeout_ms > 0 ? r.connect_timeout_ms : options_.connect_timeout_ms;
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(connect_ms, 1)));
  set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
  set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(&t));
  return ok;
}

bool EgressClient::Impl::set_method(CURL* e, const EgressRequest& r) {
  const bool empty_body = r.body == nullptr || r.body->empty();
  bool ok = true;
  switch (r.method) {
    case HttpMethod::post:
      break;
    case HttpMethod::get:
      ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
      break;
    case HttpMethod::del:
      // Without a body, a DELETE has no Content-Length either, like a GET.
      if (empty_body) ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
      ok = ok && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE") == CURLE_OK;
      break;
    case HttpMethod::put:
      ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT") == CURLE_OK;
      break;
    case HttpMethod::patch:
      ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH") == CURLE_OK;
      break;
  }
  return ok;
}

bool EgressClient::Impl::configure_handle(CURL* e) {
  bool ok = true;
  const auto set = [&](CURLoption option, auto value) {
    ok = ok && curl_easy_setopt(e, option, value) == CURLE_OK;
  };
  set(CURLOPT_NOSIGNAL, 1L);
  // An attempt that times out or is cancelled while its DNS lookup runs would otherwise join
  // the resolver thread, stalling the io thread for as long as the DNS server takes.
  set(CURLOPT_QUICK_EXIT, 1L);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  // No proxy from the environment: the guard must see the real destination.
  set(CURLOPT_PROXY, "");
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) {
    // Exactly these CAs: no directory of system certificates next to the file.
    set(CURLOPT_CAINFO, options_.ca_file.c_str());
    set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  }
  if (!options_.client_cert_file.empty()) {
    set(CURLOPT_SSLCERT, options_.client_cert_file.c_str());
    set(CURLOPT_SSLKEY, options_.client_key_file.c_str());
  }
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  set(CURLOPT_POST, 1L);
  set(CURLOPT_USERAGENT, options_.user_agent.c_str());
  set(CURLOPT_WRITEFUNCTION, &Impl::on_write);
  set(CURLOPT_OPENSOCKETFUNCTION, &Impl::on_open_socket);
  // Connections outlive transfers in the cache, so closing reports to the client itself.
  set(CURLOPT_CLOSESOCKETFUNCTION, &Impl::on_close_socket);
  set(CURLOPT_CLOSESOCKETDATA, static_cast<void*>(this));
  return ok;
}

void EgressClient::Impl::send(EgressRequest request, Callback done) {
  const Steady::time_point started = Steady::now();
  if (shut_down_) return;
  if (!std::all_of(request.headers.begin(), request.headers.end(), header_is_safe)) {
    fail_now(std::move(done), "invalid header name or value", started);
    return;
  }
  EasyHandle easy;
  if (!idle_easies_.empty()) {
    easy = std::move(idle_easies_.back());
    idle_easies_.pop_back();
  } else {
    easy.reset(curl_easy_init());
    if (easy != nullptr && !configure_handle(easy.get())) easy.reset();
  }
  if (easy == nullptr) {
    fail_now(std::move(done), "curl_easy_init failed", started);
    return;
  }
  CURL* raw_easy = easy.get();
  auto t = std::make_unique<Transfer>();
  t->easy = std::move(easy);
  t->owner = this;
  t->request = std::move(request);
  t->done = std::move(done);
  t->started = started;
  if (!configure(*t)) {
    Callback cb = std::move(t->done);
    release(std::move(t));
    fail_now(std::move(cb), "could not configure the request", started);
    return;
  }
  Transfer* raw = t.get();
  transfers_.emplace(raw_easy, std::move(t));
  if (curl_multi_add_handle(multi_, raw_easy) != CURLM_OK) {
    auto node = transfers_.extract(raw_easy);
    Callback cb = std::move(raw->done);
    release(std::move(node.mapped()));
    fail_now(std::move(cb), "curl_multi_add_handle failed", started);
  }
}

EgressResponse EgressClient::Impl::make_response(Transfer& t, CURLcode result) {
  EgressResponse response;
  response.duration_ms = elapsed_ms(t.started);
  long status = 0;
  curl_easy_getinfo(t.easy.get(), CURLINFO_RESPONSE_CODE, &status);
  response.http_status = static_cast<int>(status);
  response.body_excerpt = std::move(t.excerpt);
  curl_header* retry_after = nullptr;
  if (status > 0 && curl_easy_header(t.easy.get(), "Retry-After", 0, CURLH_HEADER, -1,
                                     &retry_after) == CURLHE_OK) {
    response.retry_after = retry_after->value;
  }
  for (const std::string& name : t.request.response_headers) {
    curl_header* header = nullptr;
    if (status > 0 && curl_easy_header(t.easy.get(), name.c_str(), 0, CURLH_HEADER, -1, &header) == CURLHE_OK) {
      response.headers.emplace_back(name, header->value);
    }
  }
  AttemptClassification c = classify_attempt({.http_status = status,
                                              .result = result,
                                              .body_over_cap = t.body_over_cap,
                                              .blocked_reason = t.blocked_reason,
                                              .curl_error = t.error_buffer});
  response.outcome = c.outcome;
  response.error = std::move(c.error);
  return response;
}

void EgressClient::Impl::release(std::unique_ptr<Transfer> t) {
  if (multi_ != nullptr) curl_multi_remove_handle(multi_, t->easy.get());  // OK if never added
  t->headers.reset();
  if (idle_easies_.size() < kMaxIdleEasyHandles) {
    // An idle handle keeps its constant options (configure_handle) but no pointer into `t`.
    CURL* e = t->easy.get();
    curl_easy_setopt(e, CURLOPT_PRIVATE, nullptr);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, nullptr);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, nullptr);
    if (t->request.method != HttpMethod::post) {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nullptr);
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    }
    idle_easies_.push_back(std::move(t->easy));
  }
  // Otherwise the handle is cleaned up with `t`.
}

void EgressClient::Impl::fail_now(Callback done, std::string error, Steady::time_point started) {
  EgressResponse response;
  response.outcome = AttemptOutcome::other;
  response.error = std::move(error);
  response.duration_ms = elapsed_ms(started);
  boost::asio::post(io_, [done = std::move(done), response = std::move(response)]() mutable {
    done(std::move(response));
  });
}

void EgressClient::Impl::cancel_all() {
  std::vector<std::unique_ptr<Transfer>> cancelled;
  for (auto& [easy, t] : transfers_) cancelled.push_back(std::move(t));
  transfers_.clear();
  for (auto& t : cancelled) {
    EgressResponse response;
    response.outcome = AttemptOutcome::other;
    response.cancelled = true;
    response.error = "cancelled";
    response.duration_ms = elapsed_ms(t->started);
    Callback done = std::move(t->done);
    release(std::move(t));
    boost::asio::post(io_, [done = std::move(done), response = std::move(response)]() mutable {
      done(std::move(response));
    });
  }
}

// --- public facade -------------------------------------------------------------------------

EgressClient::EgressClient(boost::asio::io_context& io, EgressOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

EgressClient::~EgressClient() { impl_->shutdown(); }

void EgressClient::send(EgressRequest request, Callback done) {
  impl_->send(std::move(request), std::move(done));
}

void EgressClient::cancel_all() { impl_->cancel_all(); }

}  // namespace relay
