from posdiag.agent.cli import entry

entry()
