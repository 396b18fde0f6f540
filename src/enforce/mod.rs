//! enforce (being written)
