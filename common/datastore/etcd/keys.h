#pragma once
// Internal to the etcd backend: etcd's conventions for key ranges.

#include <string>
#include <string_view>

namespace calico::datastore::etcd {

// The range_end that makes [prefix, range_end) cover exactly the keys starting with
// `prefix`: the prefix with its last byte below 0xff incremented and the 0xff bytes after it
// dropped ("a/" → "a0", "a\xff" → "b"). For "" or all-0xff prefixes, "\0": every key.
inline std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// etcd rejects an empty key; with range_end "\0", key "\0" means "from the first key".
inline std::string WatchKey(std::string_view prefix) {
  return prefix.empty() ? std::string(1, '\0') : std::string(prefix);
}

}  // namespace calico::datastore::etcd
