"""Writers: a partition's frames to a file (:mod:`.base`), analysis results to
downloadable files (:mod:`.results`)."""
