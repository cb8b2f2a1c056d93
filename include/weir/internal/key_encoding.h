// The byte encoding of keyed state: KeyScope builds composite keys
// `[key group: 2B BE][varint len][key][varint len][namespace]`; values carry
// their expiry in front. Internal.

#ifndef WEIR_INTERNAL_KEY_ENCODING_H_
#define WEIR_INTERNAL_KEY_ENCODING_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "weir/codec.h"
#include "weir/time.h"

namespace weir::internal {

// The key and namespace state is currently scoped to. Keyed operators set it
// per record; windows set the namespace.
struct KeyScope {
  std::string composite;  // [kg][len][key][len][namespace]
  size_t key_end = 0;     // composite.substr(0, key_end) is [kg][len][key]
  int key_group = 0;
  Timestamp now = 0;  // processing time, for TTL

  void SetKey(int group, std::string_view key_bytes) {
    key_group = group;
    composite.clear();
    composite.push_back(static_cast<char>(group >> 8));
    composite.push_back(static_cast<char>(group & 0xff));
    AppendVarint(composite, key_bytes.size());
    composite.append(key_bytes);
    key_end = composite.size();
    composite.push_back('\0');  // empty namespace
  }
  void SetNamespace(std::string_view ns) {
    composite.resize(key_end);
    AppendVarint(composite, ns.size());
    composite.append(ns);
  }
  // Scopes state to `ns` (e.g. a window's start) encoded with Codec<N>;
  // namespaces of one key sort in the codec's byte order.
  template <class N>
  void SetNamespaceTo(const N& ns) {
    ns_bytes_.clear();
    Codec<N>::Encode(ns, ns_bytes_);
    SetNamespace(ns_bytes_);
  }
  // Back to the key's empty namespace (what SetKey leaves).
  void ClearNamespace() {
    composite.resize(key_end);
    composite.push_back('\0');
  }

 private:
  std::string ns_bytes_;  // scratch, so setting a namespace does not allocate
};

// The key group of a composite key.
inline int KeyGroupOfComposite(std::string_view composite) {
  return composite.size() < 2
             ? -1
             : (static_cast<uint8_t>(composite[0]) << 8) | static_cast<uint8_t>(composite[1]);
}

// Values in a KvStore or snapshot: [varint expire_at_ms + 1, or 0][payload].
inline void AppendExpiry(std::string& out, Timestamp expire_at) {
  AppendVarint(out, expire_at == kMaxTimestamp ? 0 : static_cast<uint64_t>(expire_at) + 1);
}
inline bool ReadExpiry(std::string_view& in, Timestamp& expire_at) {
  uint64_t raw;
  if (!ReadVarint(in, raw)) return false;
  expire_at = raw == 0 ? kMaxTimestamp : static_cast<Timestamp>(raw - 1);
  return true;
}

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_KEY_ENCODING_H_
