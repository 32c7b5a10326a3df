"""Node types in a package named in FLOWNOVA_NODE_MODULES: the registry imports every module here, so each
module is a whole node type, as a deployment would write its own."""
