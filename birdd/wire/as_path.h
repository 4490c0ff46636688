#pragma once
// birdd/wire: AS path arithmetic the codec needs for RFC 6793 and the RIB needs for RFC 4271
// §9.1.2.2(a).

#include <cstddef>

#include "birdd/wire/message.h"

namespace calico::birdd::wire {

// Number of ASes as route selection counts them: an AS_SET counts 1 whatever its size, and
// confederation segments count 0 (RFC 4271 §9.1.2.2(a), RFC 5065 §5.3).
size_t AsPathLength(const AsPath& path);

// True when any AS needs four octets, i.e. a 2-octet peer must get AS_TRANS + AS4_PATH.
bool NeedsAs4(const AsPath& path);

// RFC 6793 §4.2.3: the AS path of an UPDATE received from an OLD (2-octet) speaker, rebuilt from
// AS_PATH and AS4_PATH. If AS_PATH counts fewer ASes than AS4_PATH, AS4_PATH is ignored;
// otherwise as many leading ASes (and segments) of AS_PATH as make up the difference are
// prepended to AS4_PATH, with leading confederation segments kept; the two sequences that meet
// at the seam are joined.
AsPath MergeAs4Path(const AsPath& as_path, const AsPath& as4_path);

}  // namespace calico::birdd::wire
