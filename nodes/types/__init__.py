"""The built-in node types; each module registers one. The registry imports every module here."""
