#include "lib/checkpoint/s3/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/checkpoint/manifest_io.h"
#include "lib/checkpoint/s3/s3_xml.h"
#include "lib/checkpoint/s3/sigv4.h"
#include "lib/common/curl_common.h"
#include "lib/common/http_client.h"

#if LIBCURL_VERSION_NUM < 0x074B00
#error "weir's S3 client needs libcurl >= 7.75 (CURLOPT_AWS_SIGV4)"
#endif

namespace weir::internal {

// One S3 API call.
struct S3Client::Request {
  // The S3 API name, for error messages: "PutObject".
  absl::string_view operation;
  absl::string_view method;
  const std::string& bucket;
  const std::string& key;
  std::vector<std::pair<std::string, std::string>> query;
  absl::string_view body;
  // Set: a 2xx body goes here instead of into Response::body.
  S3BodySink* sink = nullptr;
  // The 2xx body is an XML document that may also be an <Error> (S3 can
  // fail a CompleteMultipartUpload after answering 200).
  bool xml_response = false;
  // PutObject: the body's crc32, stored as the object's metadata
  // (kChecksumHeader). GetObject (`verify_checksum`): a 2xx body that does
  // not match the crc32 its response carries is a torn read, retried.
  std::string checksum;
  bool verify_checksum = false;
};

struct S3Client::Response {
  long status = 0;
  std::string body;
  std::string etag;
};

namespace {

// Error bodies beyond this are cut (they are a few hundred bytes from S3).
constexpr size_t kMaxErrorBody = 64 << 10;
constexpr absl::Duration kMaxConnectTimeout = absl::Seconds(10);
// The status payload (type URL) that holds the S3 error code.
constexpr char kS3ErrorCodePayload[] = "weir.dev/s3-error-code";
// The user metadata that carries the crc32 of a PutObject body (hex); S3
// and compatible servers return it with the object.
constexpr char kChecksumHeader[] = "x-amz-meta-weir-crc32";

std::string ChecksumOf(absl::string_view body) {
  return absl::StrFormat("%08x", Crc32(std::string_view(body.data(), body.size())));
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::string FirstNonEmpty(std::initializer_list<std::string> values) {
  for (const std::string& value : values) {
    if (!value.empty()) return value;
  }
  return "";
}

absl::Status BadConfig(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("invalid S3 configuration: ", what));
}

// What a curl transfer reads from and writes to.
struct Transfer {
  CURL* curl = nullptr;
  absl::string_view upload;
  size_t upload_offset = 0;
  S3BodySink* sink = nullptr;
  absl::Status sink_status;
  std::string body;
  std::string etag;
  std::string request_id;
  std::string checksum;  // kChecksumHeader of the response
};

bool IsSuccess(long status) { return status >= 200 && status < 300; }

size_t ReadCallback(char* buffer, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t length = std::min(size * count, transfer->upload.size() - transfer->upload_offset);
  std::memcpy(buffer, transfer->upload.data() + transfer->upload_offset, length);
  transfer->upload_offset += length;
  return length;
}

// libcurl rewinds the upload when it resends a request, e.g. on a fresh
// connection after a reused one turned out closed.
int SeekCallback(void* user, curl_off_t offset, int origin) {
  auto* transfer = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > transfer->upload.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  transfer->upload_offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t length = size * count;
  long status = 0;
  curl_easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &status);
  if (transfer->sink != nullptr && IsSuccess(status)) {
    transfer->sink_status = transfer->sink->append(absl::string_view(data, length));
    return transfer->sink_status.ok() ? length : 0;  // 0 aborts the transfer
  }
  if (IsSuccess(status) || transfer->body.size() < kMaxErrorBody) {
    transfer->body.append(data, length);
  }
  return length;
}

size_t HeaderCallback(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  absl::string_view line(data, size * count);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response (after 100 Continue)
    transfer->etag.clear();
    transfer->request_id.clear();
    transfer->checksum.clear();
    return line.size();
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return line.size();
  absl::string_view name = line.substr(0, colon);
  absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (absl::EqualsIgnoreCase(name, "etag")) {
    transfer->etag = std::string(value);
  } else if (absl::EqualsIgnoreCase(name, "x-amz-request-id")) {
    transfer->request_id = std::string(value);
  } else if (absl::EqualsIgnoreCase(name, kChecksumHeader)) {
    transfer->checksum = std::string(value);
  }
  return line.size();
}

// Whether an XML body's root element is <Error>.
bool IsErrorDocument(absl::string_view body) {
  size_t pos = 0;
  while ((pos = body.find('<', pos)) != absl::string_view::npos) {
    absl::string_view rest = body.substr(pos);
    if (absl::StartsWith(rest, "<?") || absl::StartsWith(rest, "<!")) {
      ++pos;
      continue;
    }
    return absl::StartsWith(rest, "<Error>") || absl::StartsWith(rest, "<Error ");
  }
  return false;
}

// The <Code> and <Message> of an S3 error document; for a body that is not
// one (a proxy's HTML page, say), its start as the message.
std::pair<std::string, std::string> ParseError(absl::string_view body) {
  std::string code;
  std::string message;
  if (std::optional<absl::string_view> raw = XmlFirstElement(body, "Code")) {
    code = XmlUnescape(*raw).value_or(std::string(*raw));
  }
  if (std::optional<absl::string_view> raw = XmlFirstElement(body, "Message")) {
    message = XmlUnescape(*raw).value_or(std::string(*raw));
  }
  if (code.empty() && message.empty() && !body.empty()) {
    message = absl::CHexEscape(body.substr(0, 200));
  }
  return {code, message};
}

// S3 answers 200 to a CompleteMultipartUpload it then fails, with an <Error>
// document as the body: the HTTP status the error's code stands for.
long StatusOfErrorIn200(absl::string_view s3_code) {
  if (s3_code == "AccessDenied" || s3_code == "InvalidAccessKeyId" ||
      s3_code == "SignatureDoesNotMatch") {
    return 403;
  }
  if (absl::StartsWith(s3_code, "NoSuch")) return 404;
  if (s3_code.empty() || s3_code == "InternalError" || s3_code == "SlowDown") return 500;
  return 400;
}

absl::StatusCode CodeForHttpStatus(long status, absl::string_view s3_code) {
  if (s3_code == "NoSuchKey" || s3_code == "NoSuchBucket" || s3_code == "NoSuchUpload") {
    return absl::StatusCode::kNotFound;
  }
  if (status == 416) return absl::StatusCode::kOutOfRange;
  return internal::CodeForHttpStatus(status);  // the generic mapping (http_client.h)
}

// 5xx (but 501), 429 and timeouts. S3 reports a client that sent too slowly
// as 400 RequestTimeout, which is a timeout too.
bool IsRetryableHttp(long status, absl::string_view s3_code) {
  return IsRetryableHttpStatus(status) || s3_code == "RequestTimeout" || s3_code == "SlowDown" ||
         s3_code == "InternalError";
}

}  // namespace

std::string S3ErrorCode(const absl::Status& status) {
  absl::optional<absl::Cord> code = status.GetPayload(kS3ErrorCodePayload);
  return code ? std::string(*code) : "";
}

absl::StatusOr<S3Config> ResolveS3Config(const S3Options& options) {
  S3Config config;
  config.region =
      FirstNonEmpty({options.region, GetEnv("AWS_REGION"), GetEnv("AWS_DEFAULT_REGION")});
  if (config.region.empty()) config.region = "us-east-1";
  // The region goes into libcurl's "aws:amz:<region>:s3" and into host names.
  for (char c : config.region) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return BadConfig(absl::StrCat("region \"", config.region, "\" is not like us-east-1"));
    }
  }

  config.endpoint =
      FirstNonEmpty({options.endpoint, GetEnv("AWS_ENDPOINT_URL_S3"), GetEnv("AWS_ENDPOINT_URL")});
  if (config.endpoint.empty()) {
    config.endpoint = absl::StrCat("https://s3.", config.region, ".amazonaws.com");
  }
  while (!config.endpoint.empty() && config.endpoint.back() == '/') config.endpoint.pop_back();
  absl::string_view authority = config.endpoint;
  if (!absl::ConsumePrefix(&authority, "http://") && !absl::ConsumePrefix(&authority, "https://")) {
    return BadConfig(
        absl::StrCat("endpoint \"", config.endpoint, "\" must start with http:// or https://"));
  }
  if (authority.empty() || authority.front() == '/' ||
      config.endpoint.find_first_of("?# \t\r\n") != std::string::npos) {
    return BadConfig(absl::StrCat("endpoint \"", config.endpoint, "\" is not a URL like ",
                                  "http://127.0.0.1:9000 or https://s3.us-east-1.amazonaws.com"));
  }

  // Credentials come together: explicit ones never mix with the environment's.
  if (!options.access_key_id.empty() || !options.secret_access_key.empty()) {
    config.access_key_id = options.access_key_id;
    config.secret_access_key = options.secret_access_key;
    config.session_token = options.session_token;
  } else {
    config.access_key_id = GetEnv("AWS_ACCESS_KEY_ID");
    config.secret_access_key = GetEnv("AWS_SECRET_ACCESS_KEY");
    config.session_token = GetEnv("AWS_SESSION_TOKEN");
  }
  if (config.access_key_id.empty() != config.secret_access_key.empty()) {
    return BadConfig("an access key id needs a secret access key and vice versa");
  }
  if (config.access_key_id.empty() && !config.session_token.empty()) {
    return BadConfig("a session token needs an access key id and a secret access key");
  }
  for (const std::string* value :
       {&config.access_key_id, &config.secret_access_key, &config.session_token}) {
    if (value->find_first_of("\r\n") != std::string::npos) {
      return BadConfig("credentials may not contain line breaks");
    }
  }

  config.path_style = options.path_style;
  // S3 takes up to 5 GiB per part; it wants at least 5 MiB but for the last
  // part, which S3-compatible test servers do not insist on.
  if (options.multipart_part_size == 0 || options.multipart_part_size > (size_t{5} << 30)) {
    return BadConfig("multipart_part_size must be in [1 byte, 5 GiB]");
  }
  config.multipart_part_size = options.multipart_part_size;
  if (options.max_attempts < 1) return BadConfig("max_attempts must be >= 1");
  config.max_attempts = options.max_attempts;
  if (options.request_timeout <= absl::ZeroDuration()) {
    return BadConfig("request_timeout must be positive");
  }
  config.request_timeout = options.request_timeout;
  return config;
}

absl::StatusOr<std::unique_ptr<S3Client>> S3Client::Create(S3Config config) {
  if (absl::Status status = InitCurl(); !status.ok()) return status;
  return std::unique_ptr<S3Client>(new S3Client(std::move(config)));
}

S3Client::~S3Client() = default;

std::string S3Client::Url(const Request& request) const {
  std::string url;
  std::string encoded_key = UriEncode(request.key, /*keep_slash=*/true);
  if (config_.path_style) {
    url = absl::StrCat(config_.endpoint, "/", request.bucket);
    if (!request.key.empty()) absl::StrAppend(&url, "/", encoded_key);
  } else {
    size_t scheme_end = config_.endpoint.find("://") + 3;
    url = absl::StrCat(config_.endpoint.substr(0, scheme_end), request.bucket, ".",
                       config_.endpoint.substr(scheme_end), "/", encoded_key);
  }
  // Already canonical: libcurl 7.88 signs the query string as it is.
  if (!request.query.empty()) absl::StrAppend(&url, "?", CanonicalQuery(request.query));
  return url;
}

namespace {

using CurlHeaders = std::unique_ptr<curl_slist, void (*)(curl_slist*)>;

// The request's headers: libcurl signs x-amz-content-sha256's value as the
// payload hash (see sigv4.h); a session token goes along when there is one.
absl::StatusOr<CurlHeaders> RequestHeaders(absl::string_view body, const std::string& session_token,
                                           const std::string& checksum) {
  CurlHeaders headers(nullptr, &curl_slist_free_all);
  std::vector<std::string> lines = {absl::StrCat(
      "x-amz-content-sha256: ", body.empty() ? std::string(kEmptySha256) : Sha256Hex(body))};
  if (!session_token.empty())
    lines.push_back(absl::StrCat("x-amz-security-token: ", session_token));
  if (!checksum.empty()) lines.push_back(absl::StrCat(kChecksumHeader, ": ", checksum));
  for (const std::string& line : lines) {
    curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
    if (appended == nullptr) return absl::ResourceExhaustedError("curl_slist_append failed");
    headers.release();
    headers.reset(appended);
  }
  return headers;
}

// What one attempt sets on its curl handle.
struct Attempt {
  const std::string* url = nullptr;
  absl::string_view method;
  bool upload = false;
  size_t body_size = 0;
  bool download_to_sink = false;
  long timeout_ms = 0;
  long connect_timeout_ms = 0;
  curl_slist* headers = nullptr;
  // Set to sign with SigV4.
  const std::string* sigv4_provider = nullptr;
  const S3Config* config = nullptr;
};

void ConfigureHandle(CURL* curl, const Attempt& attempt, Transfer& transfer, char* error_buffer) {
  curl_easy_setopt(curl, CURLOPT_URL, attempt.url->c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  // Keys are paths, not URLs: "a/../b" must not become "b".
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, attempt.connect_timeout_ms);
  if (attempt.download_to_sink) {
    // A download may be large: fail it when it stalls, not when it is slow.
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, std::max(1L, (attempt.timeout_ms + 999) / 1000));
  } else {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, attempt.timeout_ms);
  }
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "weir");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, attempt.headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (attempt.upload) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, &ReadCallback);
    curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, &SeekCallback);
    curl_easy_setopt(curl, CURLOPT_SEEKDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(attempt.body_size));
    if (attempt.method == "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (attempt.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, std::string(attempt.method).c_str());
  }
  if (attempt.sigv4_provider != nullptr) {
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, attempt.sigv4_provider->c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, attempt.config->access_key_id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, attempt.config->secret_access_key.c_str());
  }
}

// The failure of an attempt that got an HTTP answer (an error status, or
// an error document in a 200), with S3's error code as a payload.
absl::Status HttpFailure(
    long status, const Transfer& transfer, bool* retryable,
    const std::function<absl::Status(absl::StatusCode, absl::string_view)>& failure) {
  auto [s3_code, message] = ParseError(transfer.body);
  const long effective_status = IsSuccess(status) ? StatusOfErrorIn200(s3_code) : status;
  std::string detail = absl::StrCat("HTTP ", status);
  if (!s3_code.empty()) absl::StrAppend(&detail, " ", s3_code);
  if (!message.empty()) absl::StrAppend(&detail, ": ", message);
  if (!transfer.request_id.empty()) {
    absl::StrAppend(&detail, " (request id ", transfer.request_id, ")");
  }
  absl::Status error = failure(CodeForHttpStatus(effective_status, s3_code), detail);
  if (!s3_code.empty()) error.SetPayload(kS3ErrorCodePayload, absl::Cord(s3_code));
  *retryable = IsRetryableHttp(effective_status, s3_code);
  return error;
}

}  // namespace

// One attempt after another (each on a pooled handle) until one succeeds,
// fails for good, or config_.max_attempts is reached.
absl::StatusOr<S3Client::Response> S3Client::Send(const Request& request) {
  const std::string url = Url(request);
  const std::string target = request.key.empty()
                                 ? absl::StrCat("s3://", request.bucket)
                                 : absl::StrCat("s3://", request.bucket, "/", request.key);
  auto failure = [&](absl::StatusCode code, absl::string_view detail) {
    return absl::Status(code,
                        absl::StrCat("S3 ", request.operation, " ", target, " failed: ", detail));
  };
  absl::StatusOr<CurlHeaders> headers =
      RequestHeaders(request.body, config_.session_token, request.checksum);
  if (!headers.ok()) return headers.status();
  const std::string sigv4_provider = absl::StrCat("aws:amz:", config_.region, ":s3");
  Attempt attempt{
      .url = &url,
      .method = request.method,
      .upload = request.method == "PUT" || request.method == "POST",
      .body_size = request.body.size(),
      .download_to_sink = request.sink != nullptr,
      .timeout_ms = static_cast<long>(absl::ToInt64Milliseconds(config_.request_timeout)),
      .connect_timeout_ms = static_cast<long>(
          absl::ToInt64Milliseconds(std::min(config_.request_timeout, kMaxConnectTimeout))),
      .headers = headers->get(),
      .sigv4_provider = config_.access_key_id.empty() ? nullptr : &sigv4_provider,
      .config = &config_};

  RetryBackoff backoff(config_.initial_backoff, config_.max_backoff);
  absl::Status last_error;
  for (int attempt_number = 1;; ++attempt_number) {
    if (request.sink != nullptr) {
      if (absl::Status status = request.sink->reset(); !status.ok()) return status;
    }
    CurlHandlePool::Handle handle = handles_.Acquire();
    if (handle == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
    CURL* curl = static_cast<CURL*>(handle.get());
    Transfer transfer;
    transfer.curl = curl;
    transfer.upload = request.body;
    transfer.sink = request.sink;
    char error_buffer[CURL_ERROR_SIZE] = {0};
    ConfigureHandle(curl, attempt, transfer, error_buffer);
    const CURLcode result = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    handles_.Release(std::move(handle));

    bool retryable = false;
    if (result != CURLE_OK) {
      if (!transfer.sink_status.ok()) return transfer.sink_status;
      std::string detail =
          absl::StrCat("no response from ", config_.endpoint, ": ", curl_easy_strerror(result));
      if (error_buffer[0] != '\0') absl::StrAppend(&detail, " (", error_buffer, ")");
      last_error = failure(CodeForCurl(result), detail);
      retryable = IsRetryableCurl(result);
    } else if (IsSuccess(status) && request.verify_checksum && !transfer.checksum.empty() &&
               !absl::EqualsIgnoreCase(transfer.checksum, ChecksumOf(transfer.body))) {
      // Read while another PUT replaced the object (a server that rewrites
      // objects in place): read it again.
      last_error = failure(
          absl::StatusCode::kDataLoss,
          absl::StrCat("the body (", transfer.body.size(), " bytes, crc32 ",
                       ChecksumOf(transfer.body), ") does not match the crc32 stored with it (",
                       transfer.checksum, "): it was overwritten while being read"));
      retryable = true;
    } else if (IsSuccess(status) && !(request.xml_response && IsErrorDocument(transfer.body))) {
      return Response{status, std::move(transfer.body), std::move(transfer.etag)};
    } else {
      last_error = HttpFailure(status, transfer, &retryable, failure);
    }
    if (!retryable) return last_error;
    if (attempt_number >= config_.max_attempts) {
      absl::Status final_error(
          last_error.code(),
          absl::StrCat(last_error.message(), " (gave up after ", attempt_number, " attempts)"));
      last_error.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
        final_error.SetPayload(type_url, payload);
      });
      return final_error;
    }
    absl::SleepFor(backoff.Next());
  }
}

absl::Status S3Client::PutObject(const std::string& bucket, const std::string& key,
                                 absl::string_view body) {
  return Send({.operation = "PutObject",
               .method = "PUT",
               .bucket = bucket,
               .key = key,
               .body = body,
               .checksum = ChecksumOf(body)})
      .status();
}

absl::StatusOr<std::string> S3Client::GetObject(const std::string& bucket, const std::string& key) {
  absl::StatusOr<Response> response = Send({.operation = "GetObject",
                                            .method = "GET",
                                            .bucket = bucket,
                                            .key = key,
                                            .verify_checksum = true});
  if (!response.ok()) return response.status();
  return std::move(response->body);
}

absl::Status S3Client::GetObject(const std::string& bucket, const std::string& key,
                                 S3BodySink& sink) {
  return Send({.operation = "GetObject",
               .method = "GET",
               .bucket = bucket,
               .key = key,
               .sink = &sink})
      .status();
}

absl::Status S3Client::DeleteObject(const std::string& bucket, const std::string& key) {
  absl::Status status =
      Send({.operation = "DeleteObject", .method = "DELETE", .bucket = bucket, .key = key})
          .status();
  // S3 answers 204 for a missing key; some compatible servers answer 404.
  if (absl::IsNotFound(status) && S3ErrorCode(status) != "NoSuchBucket") {
    return absl::OkStatus();
  }
  return status;
}

absl::StatusOr<S3ListPage> S3Client::ListObjectsV2(
    const std::string& bucket, const std::string& prefix,
    const std::optional<std::string>& continuation_token) {
  static const std::string kNoKey;
  std::vector<std::pair<std::string, std::string>> query = {{"list-type", "2"}};
  if (!prefix.empty()) query.emplace_back("prefix", prefix);
  if (continuation_token) query.emplace_back("continuation-token", *continuation_token);
  absl::StatusOr<Response> response = Send({.operation = "ListObjectsV2",
                                            .method = "GET",
                                            .bucket = bucket,
                                            .key = kNoKey,
                                            .query = std::move(query),
                                            .xml_response = true});
  if (!response.ok()) return response.status();
  auto malformed = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("S3 ListObjectsV2 s3://", bucket, " prefix \"", prefix,
                                            "\": malformed response: ", why));
  };
  S3ListPage page;
  for (absl::string_view contents : XmlElements(response->body, "Contents")) {
    std::optional<absl::string_view> key = XmlFirstElement(contents, "Key");
    if (!key) return malformed("<Contents> without <Key>");
    absl::StatusOr<std::string> unescaped = XmlUnescape(*key);
    if (!unescaped.ok()) return malformed(unescaped.status().message());
    page.keys.push_back(*std::move(unescaped));
  }
  std::optional<absl::string_view> truncated = XmlFirstElement(response->body, "IsTruncated");
  if (truncated && *truncated == "true") {
    std::optional<absl::string_view> token =
        XmlFirstElement(response->body, "NextContinuationToken");
    if (!token || token->empty()) return malformed("truncated without NextContinuationToken");
    absl::StatusOr<std::string> unescaped = XmlUnescape(*token);
    if (!unescaped.ok()) return malformed(unescaped.status().message());
    if (continuation_token && *unescaped == *continuation_token) {
      return malformed("the continuation token did not advance");
    }
    page.next_continuation_token = *std::move(unescaped);
  }
  return page;
}

absl::StatusOr<std::string> S3Client::CreateMultipartUpload(const std::string& bucket,
                                                            const std::string& key) {
  absl::StatusOr<Response> response = Send({.operation = "CreateMultipartUpload",
                                            .method = "POST",
                                            .bucket = bucket,
                                            .key = key,
                                            .query = {{"uploads", ""}},
                                            .xml_response = true});
  if (!response.ok()) return response.status();
  std::optional<absl::string_view> upload_id = XmlFirstElement(response->body, "UploadId");
  absl::StatusOr<std::string> unescaped =
      upload_id ? XmlUnescape(*upload_id) : absl::DataLossError("no <UploadId>");
  if (!unescaped.ok() || unescaped->empty()) {
    return absl::DataLossError(absl::StrCat("S3 CreateMultipartUpload s3://", bucket, "/", key,
                                            ": malformed response without an upload id"));
  }
  return unescaped;
}

absl::StatusOr<std::string> S3Client::UploadPart(const std::string& bucket, const std::string& key,
                                                 const std::string& upload_id, int part_number,
                                                 absl::string_view body) {
  absl::StatusOr<Response> response =
      Send({.operation = "UploadPart",
            .method = "PUT",
            .bucket = bucket,
            .key = key,
            .query = {{"partNumber", absl::StrCat(part_number)}, {"uploadId", upload_id}},
            .body = body});
  if (!response.ok()) return response.status();
  if (response->etag.empty()) {
    return absl::DataLossError(absl::StrCat("S3 UploadPart s3://", bucket, "/", key, " part ",
                                            part_number, ": the response has no ETag"));
  }
  return std::move(response->etag);
}

absl::Status S3Client::CompleteMultipartUpload(const std::string& bucket, const std::string& key,
                                               const std::string& upload_id,
                                               const std::vector<std::string>& etags) {
  std::string body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (size_t idx = 0; idx < etags.size(); ++idx) {
    absl::StrAppend(&body, "<Part><PartNumber>", idx + 1, "</PartNumber><ETag>",
                    XmlEscape(etags[idx]), "</ETag></Part>");
  }
  absl::StrAppend(&body, "</CompleteMultipartUpload>");
  return Send({.operation = "CompleteMultipartUpload",
               .method = "POST",
               .bucket = bucket,
               .key = key,
               .query = {{"uploadId", upload_id}},
               .body = body,
               .xml_response = true})
      .status();
}

absl::Status S3Client::AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                            const std::string& upload_id) {
  return Send({.operation = "AbortMultipartUpload",
               .method = "DELETE",
               .bucket = bucket,
               .key = key,
               .query = {{"uploadId", upload_id}}})
      .status();
}

}  // namespace weir::internal
