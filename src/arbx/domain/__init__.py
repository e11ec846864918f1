"""Pure, synchronous core: pool math, routes, sizing and profit. No IO."""
