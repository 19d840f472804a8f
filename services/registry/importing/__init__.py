"""Bulk import of projects and adapted households: parsing.py reads the file into one command,
deciding.py decides it against the registry, all rows or none."""
from services.registry.importing.deciding import ImportDecision, decide_import
from services.registry.importing.parsing import (
                                                 HOUSEHOLDS,
                                                 MAX_ROWS_PER_SHEET,
                                                 PROJECTS,
                                                 ImportItem,
                                                 ImportPlan,
                                                 ImportRefused,
                                                 ImportRejected,
                                                 ImportResult,
                                                 RowError,
                                                 build_template,
                                                 parse_csv,
                                                 parse_xlsx,
                                                 rows_to_csv,
                                                 rows_to_xlsx,
)

__all__ = ["HOUSEHOLDS", "MAX_ROWS_PER_SHEET", "PROJECTS", "ImportDecision", "ImportItem",
           "ImportPlan", "ImportRefused", "ImportRejected", "ImportResult", "RowError",
           "build_template", "decide_import", "parse_csv", "parse_xlsx", "rows_to_csv",
           "rows_to_xlsx"]
