#include "birdd/wire/as_path.h"

#include <algorithm>

namespace calico::birdd::wire {
namespace {

bool IsConfed(AsSegmentType type) {
  return type == AsSegmentType::kAsConfedSequence || type == AsSegmentType::kAsConfedSet;
}

}  // namespace

size_t AsPathLength(const AsPath& path) {
  size_t n = 0;
  for (const AsSegment& segment : path) {
    switch (segment.type) {
      case AsSegmentType::kAsSequence:
        n += segment.asns.size();
        break;
      case AsSegmentType::kAsSet:
        n += 1;
        break;
      default:
        break;  // confederation segments do not count (RFC 5065 §5.3)
    }
  }
  return n;
}

bool NeedsAs4(const AsPath& path) {
  for (const AsSegment& segment : path) {
    for (uint32_t asn : segment.asns) {
      if (asn > 0xffff) return true;
    }
  }
  return false;
}

AsPath MergeAs4Path(const AsPath& as_path, const AsPath& as4_path) {
  const size_t have = AsPathLength(as_path);
  const size_t have4 = AsPathLength(as4_path);
  if (have < have4) return as_path;  // RFC 6793 §4.2.3: AS4_PATH ignored
  size_t need = have - have4;
  AsPath out;
  bool previous_prepended = false;
  for (size_t i = 0; i < as_path.size(); ++i) {
    const AsSegment& segment = as_path[i];
    if (IsConfed(segment.type)) {
      // Prepended when leading or adjacent to a prepended segment (RFC 6793 §4.2.3).
      if (i != 0 && !previous_prepended) break;
      out.push_back(segment);
      previous_prepended = true;
      continue;
    }
    if (need == 0) break;
    if (segment.type == AsSegmentType::kAsSet) {
      out.push_back(segment);
      need -= 1;
      previous_prepended = true;
      continue;
    }
    size_t take = std::min(need, segment.asns.size());
    out.push_back(AsSegment{segment.type, std::vector<uint32_t>(segment.asns.begin(),
                                                                segment.asns.begin() + take)});
    need -= take;
    previous_prepended = take == segment.asns.size();
  }
  for (size_t i = 0; i < as4_path.size(); ++i) {
    const AsSegment& segment = as4_path[i];
    if (i == 0 && !out.empty() && out.back().type == AsSegmentType::kAsSequence &&
        segment.type == AsSegmentType::kAsSequence) {
      out.back().asns.insert(out.back().asns.end(), segment.asns.begin(), segment.asns.end());
    } else {
      out.push_back(segment);
    }
  }
  return out;
}

}  // namespace calico::birdd::wire
