"""Reader studies: the reads schema, the analysis (Table 3, paired tests, MRMC) and its report."""
