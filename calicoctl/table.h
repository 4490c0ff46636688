#pragma once
// calicoctl's `-o ps` and `-o wide` tables: upstream's column sets per kind.

#include <ostream>
#include <string>
#include <vector>

#include "common/resources/resource.h"

namespace calico::calicoctl {

struct TableOptions {
  bool wide = false;
  bool with_namespace = false;              // -A on a namespaced kind prepends NAMESPACE
  std::string default_as_number = "64512";  // BGPConfiguration "default" spec.asNumber
};

// Headings and cell values for `kind`; every row has as many cells as headings.
std::vector<std::string> Headings(const resources::KindInfo& kind, const TableOptions& options);
std::vector<std::string> Row(const resources::Resource& resource, const TableOptions& options);

// Left-aligned columns separated by three spaces, as calicoctl prints them.
void PrintTable(std::ostream& out, const std::vector<std::string>& headings,
                const std::vector<std::vector<std::string>>& rows);

// The bordered table upstream's `calicoctl ipam show` prints (+---+ rules, | cells |).
// `right_aligned[i]` right-aligns column i's cells (counts); headings stay left-aligned unless
// `center_headings` (upstream's `node status`).
void PrintBorderedTable(std::ostream& out, const std::vector<std::string>& headings,
                        const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_aligned = {}, bool center_headings = false);

}  // namespace calico::calicoctl
