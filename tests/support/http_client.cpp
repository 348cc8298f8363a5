#include "tests/support/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <stdexcept>

namespace relay::test {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<HttpResponse*>(user)->body.append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  const std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    // A new status line (after a 100 Continue, say): forget the previous block.
    response->headers.clear();
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    response->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * count;
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

nlohmann::json HttpResponse::json() const { return nlohmann::json::parse(body, nullptr, false); }

std::string HttpResponse::error_code() const {
  const nlohmann::json doc = json();
  if (!doc.is_object()) return {};
  const auto error = doc.find("error");
  if (error == doc.end() || !error->is_object()) return {};
  const auto code = error->find("code");
  if (code == error->end() || !code->is_string()) return {};
  return code->get<std::string>();
}

std::string HttpResponse::header(std::string_view name) const {
  const auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::string HttpResponse::describe() const {
  if (status == 0) return "no response: " + transport_error;
  constexpr std::size_t kMaxBody = 2000;
  return "HTTP " + std::to_string(status) + " " +
         (body.size() > kMaxBody ? body.substr(0, kMaxBody) + "..." : body);
}

std::string bearer(std::string_view key) { return "Authorization: Bearer " + std::string(key); }

std::string x_api_key(std::string_view key) { return "X-Api-Key: " + std::string(key); }

HttpClient::HttpClient() : curl_(curl_easy_init()) {
  if (curl_ == nullptr) throw std::runtime_error("curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResponse HttpClient::request(std::string_view method, const std::string& url, const std::string& body,
                                 const Headers& headers) {
  CURL* curl = static_cast<CURL*>(curl_);
  // Reset drops the previous request's options but keeps the live connection.
  curl_easy_reset(curl);

  HttpResponse response;
  const std::string method_text(method);
  std::unique_ptr<curl_slist, SlistDeleter> header_list;
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(header_list.get(), line.c_str());
    if (next == nullptr) throw std::runtime_error("curl_slist_append failed");
    header_list.release();
    header_list.reset(next);
  };
  bool has_content_type = false;
  for (const std::string& line : headers) {
    if (lower(line).starts_with("content-type:")) has_content_type = true;
    add_header(line);
  }
  if (!body.empty() && !has_content_type) add_header("Content-Type: application/json");
  // No "Expect: 100-continue" round trip: send bodies at once, as most clients do.
  add_header("Expect:");

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const long timeout_ms = static_cast<long>(timeout_.count());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 10'000L));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");  // loopback tests must not go through a proxy
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  if (method_text == "GET" && body.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (method_text == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    if (!body.empty() || method_text == "POST" || method_text == "PATCH" || method_text == "PUT") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    }
    if (method_text != "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_text.c_str());
  }

  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    response.status = 0;
    response.transport_error = curl_easy_strerror(rc);
    return response;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace relay::test
