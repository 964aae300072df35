"""duetfair.audit: per-case table -> findings people read.

* :func:`audit_table`: the audit dict (JSON) of a per-case table, with :class:`AuditSettings`;
* :func:`~duetfair.audit.discovery.find_divergent_subgroups`: divergent subgroups (DivExplorer);
* :mod:`~duetfair.audit.report`: Markdown and self-contained HTML reports;
* :mod:`~duetfair.audit.simulate`: a realistic synthetic per-case table and the table demo.
"""

from duetfair.audit.settings import AuditSettings
from duetfair.audit.table import SCHEMA, audit_table, load_case_table

__all__ = ["SCHEMA", "AuditSettings", "audit_table", "load_case_table"]
