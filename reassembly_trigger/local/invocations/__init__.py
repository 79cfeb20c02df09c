"""The kit local tools and tests build from: records, items, Lambda contexts, environments."""
