// The S3 client against a scripted HTTP server on 127.0.0.1: every request's
// SigV4 signature is checked with an independent reference signer (itself
// checked against the examples in AWS's S3 SigV4 documentation), and so are
// retries, error mapping, multipart uploads, ListObjectsV2 pagination and
// XML handling. s3rver (tests/unit/checkpoint/s3_storage_test.cc) does not
// verify signatures, so this is where signing is tested.

#include "lib/checkpoint/s3/s3_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/checkpoint/s3/s3_xml.h"
#include "lib/checkpoint/s3/sigv4.h"
#include "weir/checkpoint.h"

namespace weir::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------------------
// A reference SigV4 signer, written from AWS's documentation independently of
// the code under test.

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (size_t idx = 0; idx < size; ++idx) {
    hex.push_back(kHex[data[idx] >> 4]);
    hex.push_back(kHex[data[idx] & 0xf]);
  }
  return hex;
}

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return Hex(digest, size);
}

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &size);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string Encode(absl::string_view value, bool keep_slash) {
  std::string out;
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::AsciiStrToUpper(Hex(&c, 1)));
    }
  }
  return out;
}

std::string Decode(absl::string_view value) {
  std::string out;
  for (size_t pos = 0; pos < value.size(); ++pos) {
    int byte = 0;
    if (value[pos] == '%' && pos + 2 < value.size() &&
        absl::SimpleHexAtoi(value.substr(pos + 1, 2), &byte)) {
      out.push_back(static_cast<char>(byte));
      pos += 2;
    } else {
      out.push_back(value[pos]);
    }
  }
  return out;
}

struct SigV4Request {
  std::string method;
  std::string canonical_uri;
  std::string canonical_query;
  // Lower-case name and value of every signed header.
  std::vector<std::pair<std::string, std::string>> signed_headers;
  std::string payload_hash;
  std::string amz_date;  // 20130524T000000Z
  std::string region;
};

std::string ReferenceSignature(SigV4Request request, absl::string_view secret) {
  std::sort(request.signed_headers.begin(), request.signed_headers.end());
  std::string canonical_headers;
  std::vector<std::string> names;
  for (const auto& [name, value] : request.signed_headers) {
    std::string collapsed = absl::StrJoin(
        absl::StrSplit(absl::StripAsciiWhitespace(value), ' ', absl::SkipEmpty()), " ");
    absl::StrAppend(&canonical_headers, name, ":", collapsed, "\n");
    names.push_back(name);
  }
  std::string canonical_request =
      absl::StrJoin({request.method, request.canonical_uri, request.canonical_query,
                     canonical_headers, absl::StrJoin(names, ";"), request.payload_hash},
                    "\n");
  std::string date = request.amz_date.substr(0, 8);
  std::string scope = absl::StrCat(date, "/", request.region, "/s3/aws4_request");
  std::string string_to_sign = absl::StrJoin(
      {std::string("AWS4-HMAC-SHA256"), request.amz_date, scope, Sha256(canonical_request)}, "\n");
  std::string key = Hmac(absl::StrCat("AWS4", secret), date);
  key = Hmac(key, request.region);
  key = Hmac(key, "s3");
  key = Hmac(key, "aws4_request");
  std::string signature = Hmac(key, string_to_sign);
  return Hex(reinterpret_cast<const unsigned char*>(signature.data()), signature.size());
}

// The examples of https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
constexpr char kExampleSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

TEST(ReferenceSignerTest, MatchesAwsGetObjectExample) {
  SigV4Request request{.method = "GET",
                       .canonical_uri = "/test.txt",
                       .canonical_query = "",
                       .signed_headers = {{"host", "examplebucket.s3.amazonaws.com"},
                                          {"range", "bytes=0-9"},
                                          {"x-amz-content-sha256", std::string(kEmptySha256)},
                                          {"x-amz-date", "20130524T000000Z"}},
                       .payload_hash = std::string(kEmptySha256),
                       .amz_date = "20130524T000000Z",
                       .region = "us-east-1"};
  EXPECT_EQ(ReferenceSignature(request, kExampleSecret),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(ReferenceSignerTest, MatchesAwsPutObjectExample) {
  std::string payload_hash = Sha256("Welcome to Amazon S3.");
  EXPECT_EQ(payload_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(Sha256Hex("Welcome to Amazon S3."), payload_hash);  // the library's hash
  SigV4Request request{.method = "PUT",
                       .canonical_uri = Encode("/test$file.text", /*keep_slash=*/true),
                       .canonical_query = "",
                       .signed_headers = {{"date", "Fri, 24 May 2013 00:00:00 GMT"},
                                          {"host", "examplebucket.s3.amazonaws.com"},
                                          {"x-amz-content-sha256", payload_hash},
                                          {"x-amz-date", "20130524T000000Z"},
                                          {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
                       .payload_hash = payload_hash,
                       .amz_date = "20130524T000000Z",
                       .region = "us-east-1"};
  EXPECT_EQ(request.canonical_uri, "/test%24file.text");
  EXPECT_EQ(ReferenceSignature(request, kExampleSecret),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(ReferenceSignerTest, MatchesAwsListObjectsExample) {
  SigV4Request request{.method = "GET",
                       .canonical_uri = "/",
                       .canonical_query = CanonicalQuery({{"prefix", "J"}, {"max-keys", "2"}}),
                       .signed_headers = {{"host", "examplebucket.s3.amazonaws.com"},
                                          {"x-amz-content-sha256", std::string(kEmptySha256)},
                                          {"x-amz-date", "20130524T000000Z"}},
                       .payload_hash = std::string(kEmptySha256),
                       .amz_date = "20130524T000000Z",
                       .region = "us-east-1"};
  EXPECT_EQ(request.canonical_query, "max-keys=2&prefix=J");
  EXPECT_EQ(ReferenceSignature(request, kExampleSecret),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4PiecesTest, EncodingAndCanonicalQuery) {
  EXPECT_EQ(UriEncode("a b/c+d=e&f~g_h.i-j%k\xc3\xa9", /*keep_slash=*/true),
            "a%20b/c%2Bd%3De%26f~g_h.i-j%25k%C3%A9");
  EXPECT_EQ(UriEncode("a/b", /*keep_slash=*/false), "a%2Fb");
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQuery({{"uploadId", "x/y+z="}, {"partNumber", "10"}, {"list-type", "2"}}),
            "list-type=2&partNumber=10&uploadId=x%2Fy%2Bz%3D");
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
}

// ---------------------------------------------------------------------------
// XML.

TEST(S3XmlTest, FindsElementsByExactName) {
  std::string xml =
      "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3\"><KeyCount>2</KeyCount>"
      "<Contents><Key>a</Key><Size>1</Size></Contents>"
      "<Contents>\n<Key>b&amp;c</Key></Contents><Contents><Key/></Contents>"
      "<Keys>no</Keys></ListBucketResult>";
  std::vector<absl::string_view> keys = XmlElements(xml, "Key");
  EXPECT_THAT(keys, ElementsAre("a", "b&amp;c", ""));
  EXPECT_EQ(XmlElements(xml, "Contents").size(), 3u);
  EXPECT_EQ(XmlFirstElement(xml, "KeyCount").value_or(""), "2");
  EXPECT_FALSE(XmlFirstElement(xml, "Missing").has_value());
  EXPECT_EQ(XmlFirstElement("<a attr=\"1\">x</a>", "a").value_or(""), "x");
}

TEST(S3XmlTest, UnescapesEntitiesAndCharacterReferences) {
  absl::StatusOr<std::string> text =
      XmlUnescape("a&amp;b&lt;c&gt;d&quot;e&apos;f&#39;g&#x27;h&#xE9;&#233;&#x1F600;");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "a&b<c>d\"e'f'g'h\xc3\xa9\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(XmlUnescape("plain").value_or(""), "plain");
  for (const char* bad :
       {"&", "&amp", "&nbsp;", "&#;", "&#xZZ;", "&#0;", "&#xD800;", "&#x110000;", "&eacute;"}) {
    EXPECT_EQ(XmlUnescape(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  std::string all = "<&>\"' x";
  EXPECT_EQ(XmlEscape(all), "&lt;&amp;&gt;&quot;&apos; x");
  EXPECT_EQ(XmlUnescape(XmlEscape(all)).value_or(""), all);
}

// ---------------------------------------------------------------------------
// A scripted HTTP/1.1 server on 127.0.0.1: records each request and answers
// it with the handler's response, one connection per request.

struct HttpRequest {
  std::string method;
  std::string path;                                          // still %-encoded
  std::string query;                                         // after '?', still %-encoded
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(absl::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return "";
  }
  std::map<std::string, std::string> QueryParams() const {
    std::map<std::string, std::string> params;
    for (absl::string_view param : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> split = absl::StrSplit(param, absl::MaxSplits('=', 1));
      params[Decode(split.first)] = Decode(split.second);
    }
    return params;
  }
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set: send only this much of the body (with the full Content-Length),
  // then close, as a dropped connection would.
  std::optional<size_t> cut_body_at;
};

HttpResponse S3Error(int status, absl::string_view code, absl::string_view message) {
  return {.status = status,
          .body = absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>", code,
                               "</Code><Message>", message,
                               "</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"),
          .headers = {{"x-amz-request-id", "4442587FB7D0A2F9"}}};
}

// The <Code> of an S3 error document, "" for anything else.
std::string ParseS3Code(absl::string_view body) {
  return std::string(XmlFirstElement(body, "Code").value_or(""));
}

class FakeHttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }

  ~FakeHttpServer() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }

  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }

  std::vector<HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_.load()) {
      pollfd poll_fd{.fd = listen_fd_, .events = POLLIN, .revents = 0};
      if (::poll(&poll_fd, 1, 50) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval timeout{.tv_sec = 10, .tv_usec = 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      HandleConnection(fd);
      ::close(fd);
    }
  }

  static bool SendAll(int fd, absl::string_view data) {
    while (!data.empty()) {
      ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      data.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  void HandleConnection(int fd) {
    std::string buffer;
    char chunk[65536];
    size_t header_end;
    while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
      if (got <= 0) return;
      buffer.append(chunk, static_cast<size_t>(got));
    }
    HttpRequest request;
    std::vector<std::string> lines =
        absl::StrSplit(absl::string_view(buffer).substr(0, header_end), "\r\n");
    std::vector<std::string> request_line = absl::StrSplit(lines[0], ' ');
    if (request_line.size() != 3) return;
    request.method = request_line[0];
    std::pair<std::string, std::string> target =
        absl::StrSplit(request_line[1], absl::MaxSplits('?', 1));
    request.path = target.first;
    request.query = target.second;
    size_t content_length = 0;
    for (size_t idx = 1; idx < lines.size(); ++idx) {
      size_t colon = lines[idx].find(':');
      if (colon == std::string::npos) continue;
      std::string name = absl::AsciiStrToLower(lines[idx].substr(0, colon));
      std::string value(absl::StripAsciiWhitespace(lines[idx].substr(colon + 1)));
      if (name == "content-length") (void)absl::SimpleAtoi(value, &content_length);
      request.headers.emplace_back(std::move(name), std::move(value));
    }
    if (absl::EqualsIgnoreCase(request.Header("expect"), "100-continue")) {
      if (!SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
    }
    request.body = buffer.substr(header_end + 4);
    while (request.body.size() < content_length) {
      ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
      if (got <= 0) return;
      request.body.append(chunk, static_cast<size_t>(got));
    }
    HttpResponse response = handler_(request);
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(std::move(request));
    }
    std::string head = absl::StrCat("HTTP/1.1 ", response.status,
                                    " Status\r\nContent-Length: ", response.body.size(),
                                    "\r\nConnection: close\r\n");
    for (const auto& [name, value] : response.headers)
      absl::StrAppend(&head, name, ": ", value, "\r\n");
    absl::StrAppend(&head, "\r\n");
    absl::string_view body = response.body;
    if (response.cut_body_at) body = body.substr(0, *response.cut_body_at);
    SendAll(fd, head) && SendAll(fd, body);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
};

// Checks `request`'s SigV4 signature with the reference signer, and that the
// signed payload hash is the body's.
void ExpectValidSignature(const HttpRequest& request, absl::string_view access_key,
                          absl::string_view secret, absl::string_view region) {
  SCOPED_TRACE(absl::StrCat(request.method, " ", request.path, "?", request.query));
  std::string header = request.Header("authorization");
  absl::string_view authorization = header;
  ASSERT_TRUE(absl::ConsumePrefix(&authorization, "AWS4-HMAC-SHA256 ")) << header;
  std::map<std::string, std::string> fields;
  for (absl::string_view field : absl::StrSplit(authorization, ',')) {
    std::pair<std::string, std::string> split =
        absl::StrSplit(absl::StripAsciiWhitespace(field), absl::MaxSplits('=', 1));
    fields[split.first] = split.second;
  }
  std::string amz_date = request.Header("x-amz-date");
  ASSERT_EQ(amz_date.size(), 16u);
  EXPECT_EQ(fields["Credential"],
            absl::StrCat(access_key, "/", amz_date.substr(0, 8), "/", region, "/s3/aws4_request"));

  EXPECT_EQ(request.Header("x-amz-content-sha256"), Sha256(request.body));
  SigV4Request reference{.method = request.method,
                         .payload_hash = request.Header("x-amz-content-sha256"),
                         .amz_date = amz_date,
                         .region = std::string(region)};
  // S3 derives the canonical URI and query from the decoded values: a URL
  // that is not already canonical fails here.
  reference.canonical_uri = Encode(Decode(request.path), /*keep_slash=*/true);
  std::vector<std::string> params;
  for (const auto& [name, value] : request.QueryParams()) {
    params.push_back(absl::StrCat(Encode(name, false), "=", Encode(value, false)));
  }
  std::sort(params.begin(), params.end());
  reference.canonical_query = absl::StrJoin(params, "&");
  std::vector<std::string> signed_names = absl::StrSplit(fields["SignedHeaders"], ';');
  for (const char* required : {"host", "x-amz-content-sha256", "x-amz-date"}) {
    EXPECT_THAT(signed_names, ::testing::Contains(required));
  }
  for (const std::string& name : signed_names) {
    reference.signed_headers.emplace_back(name, request.Header(name));
  }
  EXPECT_EQ(fields["Signature"], ReferenceSignature(reference, secret));
}

// Answers like S3 for one bucket: objects in a map, multipart uploads,
// ListObjectsV2 pages of `page_size` keys with entity-escaped keys.
class FakeS3 {
 public:
  HttpResponse operator()(const HttpRequest& request) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string path = Decode(request.path);
    std::map<std::string, std::string> query = request.QueryParams();
    // "/bucket/key" -> key
    std::string key = path.substr(std::min(path.size(), path.find('/', 1) + 1));
    if (path.find('/', 1) == std::string::npos) key.clear();
    if (request.method == "PUT" && query.count("partNumber")) {
      parts_[std::stoi(query["partNumber"])] = request.body;
      return {.headers = {{"ETag", absl::StrCat("\"etag-", query["partNumber"], "\"")}}};
    }
    if (request.method == "PUT") {
      objects_[key] = request.body;
      return {.headers = {{"ETag", "\"e\""}}};
    }
    if (request.method == "POST" && query.count("uploads")) {
      parts_.clear();
      return {.body =
                  "<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key>"
                  "<UploadId>up/1+2=3&amp;4</UploadId></InitiateMultipartUploadResult>"};
    }
    if (request.method == "POST" && query.count("uploadId")) {
      complete_body_ = request.body;
      std::string object;
      for (const auto& [number, part] : parts_) object += part;
      objects_[key] = object;
      return {.body =
                  "<CompleteMultipartUploadResult><ETag>\"x-3\"</ETag>"
                  "</CompleteMultipartUploadResult>"};
    }
    if (request.method == "DELETE") {
      objects_.erase(key);
      return {.status = 204};
    }
    if (request.method == "GET" && query.count("list-type")) {
      std::string prefix = query["prefix"];
      std::string after = query.count("continuation-token")
                              ? query["continuation-token"].substr(std::string("token:").size())
                              : "";
      std::string body = "<ListBucketResult>";
      int count = 0;
      std::string last;
      bool truncated = false;
      for (const auto& [name, data] : objects_) {
        if (!absl::StartsWith(name, prefix) || (!after.empty() && name <= after)) continue;
        if (count == page_size) {
          truncated = true;
          break;
        }
        absl::StrAppend(&body, "<Contents><Key>", XmlEscape(name), "</Key><Size>", data.size(),
                        "</Size></Contents>");
        last = name;
        ++count;
      }
      absl::StrAppend(&body, "<KeyCount>", count, "</KeyCount><IsTruncated>",
                      truncated ? "true" : "false", "</IsTruncated>");
      if (truncated) {
        absl::StrAppend(&body, "<NextContinuationToken>", XmlEscape("token:" + last),
                        "</NextContinuationToken>");
      }
      return {.body = body + "</ListBucketResult>"};
    }
    if (request.method == "GET") {
      auto found = objects_.find(key);
      if (found == objects_.end()) return S3Error(404, "NoSuchKey", "The key does not exist.");
      return {.body = found->second};
    }
    return S3Error(400, "Unexpected", "unexpected request");
  }

  int page_size = 1000;
  std::string complete_body_;

 private:
  std::mutex mu_;
  std::map<std::string, std::string> objects_;
  std::map<int, std::string> parts_;
};

constexpr char kAccessKey[] = "AKIDTEST";
constexpr char kSecret[] = "secret/with+symbols=";

S3Options OptionsFor(const FakeHttpServer& server) {
  S3Options options;
  options.endpoint = server.endpoint();
  options.region = "eu-west-3";
  options.access_key_id = kAccessKey;
  options.secret_access_key = kSecret;
  options.max_attempts = 3;
  return options;
}

std::unique_ptr<CheckpointStorage> OpenStorage(const S3Options& options,
                                               const std::string& uri = "s3://bucket/root") {
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open(uri, options);
  EXPECT_TRUE(storage.ok()) << storage.status();
  return storage.ok() ? *std::move(storage) : nullptr;
}

class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Loopback only, whatever proxy the environment names.
    ::setenv("no_proxy", "127.0.0.1,localhost", 1);
    ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    const char* tmp = std::getenv("TMPDIR");
    std::string dir_template = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/weir-s3-XXXXXX");
    ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
    scratch_dir_ = dir_template;
  }
  void TearDown() override { std::filesystem::remove_all(scratch_dir_); }

  std::string scratch_dir_;
};

TEST_F(S3ClientTest, EveryRequestIsSignedCorrectly) {
  FakeS3 s3;
  FakeHttpServer server(std::ref(s3));
  S3Options options = OptionsFor(server);
  options.session_token = "session/token+=";
  options.multipart_part_size = 1000;
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(options);
  ASSERT_NE(storage, nullptr);

  const std::string key = "dir/a b+c=d&e~f%g$h'i(j)*k,l;m:n@o!\xc3\xa9.sst";
  std::string binary;
  for (int byte = 0; byte < 256; ++byte) binary.push_back(static_cast<char>(byte));
  ASSERT_TRUE(storage->Put(key, binary).ok());
  EXPECT_TRUE(storage->Get(key).value_or("") == binary);
  ASSERT_TRUE(storage->Put("empty", "").ok());
  absl::StatusOr<std::vector<std::string>> paths = storage->List("dir/a b+");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ElementsAre(key));
  // 2500 bytes in 1000-byte parts: CreateMultipartUpload, 3 x UploadPart,
  // CompleteMultipartUpload.
  std::string big(2500, 'x');
  std::ofstream(scratch_dir_ + "/big") << big;
  ASSERT_TRUE(storage->PutFile("big", scratch_dir_ + "/big").ok());
  EXPECT_EQ(storage->Get("big").value_or(""), big);
  ASSERT_TRUE(storage->GetFile("big", scratch_dir_ + "/big.out").ok());
  ASSERT_TRUE(storage->Delete(key).ok());

  std::vector<HttpRequest> requests = server.requests();
  std::vector<std::string> methods;
  for (const HttpRequest& request : requests) {
    methods.push_back(request.method);
    ExpectValidSignature(request, kAccessKey, kSecret, "eu-west-3");
    EXPECT_EQ(request.Header("x-amz-security-token"), "session/token+=");
    EXPECT_EQ(request.Header("host"), server.endpoint().substr(std::string("http://").size()));
  }
  EXPECT_THAT(methods, ElementsAre("PUT", "GET", "PUT", "GET", "POST", "PUT", "PUT", "PUT", "POST",
                                   "GET", "GET", "DELETE"));
  // Path-style, the key under the root prefix, %-encoded once.
  EXPECT_EQ(Decode(requests[0].path), "/bucket/root/" + key);
  EXPECT_EQ(requests[3].QueryParams()["prefix"], "root/dir/a b+");
  // The parts in order, with the upload id S3 gave (entity-decoded).
  EXPECT_EQ(requests[5].QueryParams()["uploadId"], "up/1+2=3&4");
  EXPECT_EQ(requests[7].QueryParams()["partNumber"], "3");
  EXPECT_EQ(requests[7].body.size(), 500u);
  EXPECT_THAT(s3.complete_body_, HasSubstr("<Part><PartNumber>1</PartNumber><ETag>&quot;etag-1"
                                           "&quot;</ETag></Part><Part><PartNumber>2</PartNumber>"));
}

TEST_F(S3ClientTest, ListFollowsContinuationTokensAndUnescapesKeys) {
  FakeS3 s3;
  s3.page_size = 2;
  FakeHttpServer server(std::ref(s3));
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  const std::vector<std::string> keys = {"a&b", "c<d>e", "f\"g'h", "i&amp;j", "k\xc3\xa9"};
  for (const std::string& key : keys) ASSERT_TRUE(storage->Put(key, key).ok()) << key;

  absl::StatusOr<std::vector<std::string>> paths = storage->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_EQ(*paths, keys);
  std::vector<HttpRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), keys.size() + 3);  // 3 pages of at most 2
  EXPECT_EQ(requests[keys.size()].QueryParams().count("continuation-token"), 0u);
  EXPECT_EQ(requests[keys.size() + 1].QueryParams()["continuation-token"], "token:root/c<d>e");
  for (const HttpRequest& request : requests) {
    ExpectValidSignature(request, kAccessKey, kSecret, "eu-west-3");
  }
}

TEST_F(S3ClientTest, RetriesServerErrorsAndThrottling) {
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest&) -> HttpResponse {
    switch (calls.fetch_add(1)) {
      case 0:
        return S3Error(503, "SlowDown", "Please reduce your request rate.");
      case 1:
        return S3Error(429, "TooManyRequests", "Slow down.");
      default:
        return {};
    }
  });
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  absl::Status status = storage->Put("blob", "data");
  EXPECT_TRUE(status.ok()) << status;
  std::vector<HttpRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const HttpRequest& request : requests) {
    EXPECT_EQ(request.body, "data");  // the body is sent again whole
    ExpectValidSignature(request, kAccessKey, kSecret, "eu-west-3");
  }
}

TEST_F(S3ClientTest, GivesUpAfterMaxAttemptsKeepingTheServersMessage) {
  FakeHttpServer server([](const HttpRequest&) {
    return S3Error(500, "InternalError", "We encountered an internal error. Please try again.");
  });
  S3Options options = OptionsFor(server);
  options.max_attempts = 4;
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(options);
  ASSERT_NE(storage, nullptr);
  absl::Time start = absl::Now();
  absl::Status status = storage->Put("chk-1/manifest", "m");
  absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  for (const char* part :
       {"PutObject", "s3://bucket/root/chk-1/manifest", "HTTP 500", "InternalError",
        "We encountered an internal error", "4442587FB7D0A2F9", "gave up after 4 attempts"}) {
    EXPECT_THAT(status.message(), HasSubstr(part));
  }
  EXPECT_EQ(S3ErrorCode(status), "InternalError");
  EXPECT_EQ(server.requests().size(), 4u);
  // Backoff 200, 400, 800 ms, each jittered down to no less than half.
  EXPECT_GE(elapsed, absl::Milliseconds(700));
  EXPECT_LT(elapsed, absl::Seconds(10));
}

TEST_F(S3ClientTest, ClientErrorsAreNotRetried) {
  struct Case {
    HttpResponse response;
    absl::StatusCode code;
  };
  for (const Case& test :
       {Case{S3Error(403, "AccessDenied", "Access Denied"), absl::StatusCode::kPermissionDenied},
        Case{S3Error(403, "SignatureDoesNotMatch",
                     "The request signature we calculated does not "
                     "match the signature you provided."),
             absl::StatusCode::kPermissionDenied},
        Case{S3Error(404, "NoSuchKey", "The specified key does not exist."),
             absl::StatusCode::kNotFound},
        Case{S3Error(400, "InvalidArgument", "Invalid Argument"),
             absl::StatusCode::kInvalidArgument},
        Case{S3Error(301, "PermanentRedirect", "Use the bucket's region's endpoint."),
             absl::StatusCode::kInvalidArgument},
        Case{S3Error(409, "OperationAborted", "A conflicting operation is in progress."),
             absl::StatusCode::kAborted},
        Case{S3Error(412, "PreconditionFailed", "At least one precondition failed."),
             absl::StatusCode::kFailedPrecondition},
        Case{S3Error(501, "NotImplemented", "Not implemented."), absl::StatusCode::kUnimplemented},
        Case{HttpResponse{.status = 401, .body = "<html>Unauthorized</html>"},
             absl::StatusCode::kUnauthenticated}}) {
    FakeHttpServer server([&](const HttpRequest&) { return test.response; });
    std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
    ASSERT_NE(storage, nullptr);
    absl::StatusOr<std::string> data = storage->Get("chk-1/manifest");
    SCOPED_TRACE(test.response.body);
    EXPECT_EQ(data.status().code(), test.code) << data.status();
    EXPECT_THAT(data.status().message(), HasSubstr("GetObject s3://bucket/root/chk-1/manifest"));
    EXPECT_THAT(data.status().message(), Not(HasSubstr("attempts")));
    EXPECT_EQ(S3ErrorCode(data.status()), ParseS3Code(test.response.body));
    EXPECT_EQ(server.requests().size(), 1u);
  }
}

TEST_F(S3ClientTest, ARequestTimeoutFromS3IsRetried) {
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest&) -> HttpResponse {
    if (calls.fetch_add(1) == 0) {
      return S3Error(400, "RequestTimeout",
                     "Your socket connection to the server was not read from or written to "
                     "within the timeout period.");
    }
    return {};
  });
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  EXPECT_TRUE(storage->Put("blob", "x").ok());
  EXPECT_EQ(server.requests().size(), 2u);
}

// Puts `size` bytes in 10-byte parts through FakeS3, except for the requests
// `fail` answers; returns Put's status and the requests the server saw.
std::pair<absl::Status, std::vector<HttpRequest>> PutInParts(
    size_t size, const std::function<std::optional<HttpResponse>(const HttpRequest&)>& fail) {
  FakeS3 s3;
  FakeHttpServer server([&](const HttpRequest& request) -> HttpResponse {
    if (std::optional<HttpResponse> failure = fail(request)) return *failure;
    return s3(request);
  });
  S3Options options = OptionsFor(server);
  options.multipart_part_size = 10;
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(options);
  if (storage == nullptr) return {absl::InternalError("cannot open"), {}};
  absl::Status status = storage->Put("blob", std::string(size, 'x'));
  return {status, server.requests()};
}

TEST_F(S3ClientTest, AFailedPartAbortsTheMultipartUpload) {
  auto [status,
        requests] = PutInParts(35, [](const HttpRequest& request) -> std::optional<HttpResponse> {
    if (request.QueryParams()["partNumber"] != "2") return std::nullopt;
    return S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("UploadPart"));
  EXPECT_THAT(status.message(), HasSubstr("InvalidPart"));
  ASSERT_EQ(requests.size(), 4u);  // Create, part 1, part 2, Abort
  EXPECT_EQ(requests[3].method, "DELETE");
  EXPECT_EQ(requests[3].QueryParams()["uploadId"], "up/1+2=3&4");
  ExpectValidSignature(requests[3], kAccessKey, kSecret, "eu-west-3");
}

TEST_F(S3ClientTest, AnErrorInsideA200CompleteResponseFails) {
  auto [status, requests] =
      PutInParts(25, [](const HttpRequest& request) -> std::optional<HttpResponse> {
        if (request.method != "POST" || request.QueryParams().count("uploadId") == 0) {
          return std::nullopt;
        }
        return S3Error(200, "AccessDenied", "Access Denied");
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("CompleteMultipartUpload"));
  EXPECT_THAT(status.message(), HasSubstr("AccessDenied"));
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().method, "DELETE");  // aborted
}

TEST_F(S3ClientTest, AnInterruptedDownloadStartsOver) {
  const std::string data(100'000, 'd');
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest&) -> HttpResponse {
    HttpResponse response{.body = data};
    if (calls.fetch_add(1) == 0) response.cut_body_at = 40'000;
    return response;
  });
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  std::string target = scratch_dir_ + "/restored";
  absl::Status status = storage->GetFile("blob", target);
  ASSERT_TRUE(status.ok()) << status;
  std::ifstream in(target, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  EXPECT_TRUE(contents.str() == data) << contents.str().size() << " bytes";
  EXPECT_EQ(server.requests().size(), 2u);
  // Only the target is left: no temp file of either attempt.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(scratch_dir_),
                          std::filesystem::directory_iterator()),
            1);
}

// A PUT stores the body's crc32 with the object (the standard check value
// of "123456789" is cbf43926).
TEST_F(S3ClientTest, APutStoresTheCrc32OfItsBody) {
  std::string stored;
  FakeHttpServer server([&](const HttpRequest& request) -> HttpResponse {
    if (request.method == "PUT") stored = request.Header("x-amz-meta-weir-crc32");
    return {.headers = {{"ETag", "\"e\""}}};
  });
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(storage->Put("manifest", "123456789").ok());
  EXPECT_EQ(stored, "cbf43926");
}

// A GET that read an object while a server that rewrites objects in place
// (s3rver does) was overwriting it gets a mix of two versions: its body does
// not match the crc32 stored with the object, and it is read again, so a
// reader never sees a half-overwritten blob.
TEST_F(S3ClientTest, ATornReadIsReadAgain) {
  const std::string old_data(50'000, 'o');
  const std::string new_data(50'000, 'n');
  std::mutex mu;
  std::string crc;
  int gets = 0;
  FakeHttpServer server([&](const HttpRequest& request) -> HttpResponse {
    std::lock_guard<std::mutex> lock(mu);
    if (request.method == "PUT") {
      crc = request.Header("x-amz-meta-weir-crc32");
      return {.headers = {{"ETag", "\"e\""}}};
    }
    // The first read: the new version's metadata, half of each body.
    const std::string body =
        gets++ == 0 ? new_data.substr(0, 25'000) + old_data.substr(25'000) : new_data;
    return {.body = body, .headers = {{"x-amz-meta-weir-crc32", crc}}};
  });
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(storage->Put("manifest", new_data).ok());
  absl::StatusOr<std::string> read = storage->Get("manifest");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == new_data);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(gets, 2);
}

// Torn on every attempt: kDataLoss, saying so, never the mixed bytes.
TEST_F(S3ClientTest, AnObjectTornOnEveryReadIsDataLoss) {
  std::atomic<int> gets{0};
  FakeHttpServer server([&](const HttpRequest&) -> HttpResponse {
    gets.fetch_add(1);
    return {.body = "half old, half new", .headers = {{"x-amz-meta-weir-crc32", "cbf43926"}}};
  });
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(OptionsFor(server));
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<std::string> read = storage->Get("manifest");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("overwritten while being read"));
  EXPECT_EQ(gets.load(), 3);  // max_attempts
}

TEST_F(S3ClientTest, AnUnreachableEndpointIsUnavailableAfterRetries) {
  // A port nothing listens on: bound and closed again.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  S3Options options;
  options.endpoint = absl::StrCat("http://127.0.0.1:", ntohs(address.sin_port));
  options.access_key_id = kAccessKey;
  options.secret_access_key = kSecret;
  options.max_attempts = 3;
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(options);
  ASSERT_NE(storage, nullptr);

  absl::Status status = storage->Put("chk-1/manifest", "m");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("PutObject s3://bucket/root/chk-1/manifest"));
  EXPECT_THAT(status.message(), HasSubstr(options.endpoint));
  EXPECT_THAT(status.message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(storage->Get("chk-1/manifest").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(S3ClientTest, AServerThatNeverAnswersTimesOut) {
  // Connections complete in the kernel's backlog, but nobody reads them.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  S3Options options;
  options.endpoint = absl::StrCat("http://127.0.0.1:", ntohs(address.sin_port));
  options.access_key_id = kAccessKey;
  options.secret_access_key = kSecret;
  options.max_attempts = 2;
  options.request_timeout = absl::Milliseconds(300);
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(options);
  ASSERT_NE(storage, nullptr);

  absl::Time start = absl::Now();
  absl::Status status = storage->Put("blob", "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("gave up after 2 attempts"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // Downloads time out when they stall.
  EXPECT_EQ(storage->GetFile("blob", scratch_dir_ + "/x").code(), absl::StatusCode::kUnavailable);
  ::close(fd);
}

// Sets environment variables for a scope, restoring them afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> values) {
    for (const auto& [name, value] : values) {
      const char* old = std::getenv(name);
      saved_.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
      if (value == nullptr) {
        ::unsetenv(name);
      } else {
        ::setenv(name, value, 1);
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(S3ClientTest, TheEnvironmentSuppliesEndpointRegionAndCredentials) {
  FakeS3 s3;
  FakeHttpServer server(std::ref(s3));
  std::string endpoint = server.endpoint();
  ScopedEnv env({{"AWS_ENDPOINT_URL_S3", nullptr},
                 {"AWS_ENDPOINT_URL", endpoint.c_str()},
                 {"AWS_REGION", nullptr},
                 {"AWS_DEFAULT_REGION", "ap-southeast-2"},
                 {"AWS_ACCESS_KEY_ID", "AKIDENV"},
                 {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                 {"AWS_SESSION_TOKEN", "env-token"}});
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(S3Options{});
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(storage->Put("blob", "x").ok());
  // Explicit options win, and explicit credentials never take the
  // environment's session token.
  S3Options explicit_options = OptionsFor(server);
  std::unique_ptr<CheckpointStorage> explicit_storage = OpenStorage(explicit_options);
  ASSERT_NE(explicit_storage, nullptr);
  ASSERT_TRUE(explicit_storage->Put("blob", "y").ok());

  std::vector<HttpRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  ExpectValidSignature(requests[0], "AKIDENV", "env-secret", "ap-southeast-2");
  EXPECT_EQ(requests[0].Header("x-amz-security-token"), "env-token");
  ExpectValidSignature(requests[1], kAccessKey, kSecret, "eu-west-3");
  EXPECT_EQ(requests[1].Header("x-amz-security-token"), "");
}

TEST_F(S3ClientTest, WithoutCredentialsRequestsAreAnonymous) {
  FakeS3 s3;
  FakeHttpServer server(std::ref(s3));
  ScopedEnv env({{"AWS_ACCESS_KEY_ID", nullptr},
                 {"AWS_SECRET_ACCESS_KEY", nullptr},
                 {"AWS_SESSION_TOKEN", nullptr}});
  S3Options options;
  options.endpoint = server.endpoint();
  std::unique_ptr<CheckpointStorage> storage = OpenStorage(options);
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(storage->Put("blob", "x").ok());
  std::vector<HttpRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("authorization"), "");
  EXPECT_EQ(requests[0].Header("x-amz-content-sha256"), Sha256("x"));
}

}  // namespace
}  // namespace weir::internal
