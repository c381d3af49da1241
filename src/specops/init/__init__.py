"""`specops init`: bootstrap a new project from the bundled copier template, and take template updates later."""
from specops.init.bootstrap import TEMPLATE, InitError, infer_contract, init_project, plan_data, update_project

__all__ = ["TEMPLATE", "InitError", "infer_contract", "init_project", "plan_data", "update_project"]
