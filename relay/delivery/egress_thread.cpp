#include "relay/delivery/egress_thread.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace relay {

namespace asio = boost::asio;

// Handlers queued on the egress io_context and the client's callbacks hold a plain `this`: they
// run only on the egress thread, which stop() joins before the Impl can go. Handlers queued on
// the home io_context hold a shared_ptr, since that one may outlive the EgressThread.
class EgressThread::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& home, EgressOptions options)
      : home_(home), work_(asio::make_work_guard(io_)), client_(std::in_place, io_, std::move(options)) {}

  void start() {
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() {
    stopped_ = true;
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    client_.reset();  // abandons running transfers; io_ is not running
  }

  // Home thread.
  void send(EgressRequest request, Callback done) {
    bool first = false;
    {
      std::lock_guard lock(mutex_);
      first = requests_.empty();
      requests_.push_back({std::move(request), std::move(done)});
    }
    if (first) asio::post(io_, [this] { start_requests(); });
  }

  // Home thread. Requests handed over before this call are started first, then cancelled.
  void cancel_all() {
    asio::post(io_, [this] { client_->cancel_all(); });
  }

 private:
  struct Request {
    EgressRequest request;
    Callback done;
  };
  struct Answer {
    Callback done;
    EgressResponse response;
  };

  // Egress thread.
  void start_requests() {
    std::vector<Request> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(requests_);
    }
    for (Request& r : batch) {
      client_->send(std::move(r.request), [this, done = std::move(r.done)](EgressResponse response) mutable {
        answer(std::move(done), std::move(response));
      });
    }
  }

  // Egress thread.
  void answer(Callback done, EgressResponse response) {
    bool first = false;
    {
      std::lock_guard lock(mutex_);
      first = answers_.empty();
      answers_.push_back({std::move(done), std::move(response)});
    }
    if (first) asio::post(home_, [self = shared_from_this()] { self->deliver_answers(); });
  }

  // Home thread.
  void deliver_answers() {
    std::vector<Answer> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(answers_);
    }
    if (stopped_) return;
    for (Answer& a : batch) a.done(std::move(a.response));
  }

  asio::io_context& home_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::optional<EgressClient> client_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  std::mutex mutex_;
  std::vector<Request> requests_;  // handed over, not started yet
  std::vector<Answer> answers_;    // answered, not delivered yet
};

EgressThread::EgressThread(asio::io_context& home, EgressOptions options)
    : impl_(std::make_shared<Impl>(home, std::move(options))) {
  impl_->start();
}

EgressThread::~EgressThread() { impl_->stop(); }

void EgressThread::send(EgressRequest request, Callback done) { impl_->send(std::move(request), std::move(done)); }

void EgressThread::cancel_all() { impl_->cancel_all(); }

}  // namespace relay
