"""argparse's own words (usage, errors) for the catalogue: argparse asks ``gettext`` for them, and
the CLI routes that to posdiag's language (:func:`posdiag.agent.cli.speak`). Listed here so the
extractor sees them; the strings are argparse's, %-formatted by argparse itself."""

from posdiag.core.i18n import N_

ARGPARSE_TEXT = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"),
    N_("invalid %(type)s value: %(value)r"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("not allowed with argument %s"),
    N_("one of the arguments %s is required"),
    N_("%(prog)s: error: %(message)s\n"),
)
