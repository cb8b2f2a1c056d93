#include "weir/internal/spsc_ring.h"
#include "gtest/gtest.h"
