//! Image references and their OSTree branch names. (issue 3)
