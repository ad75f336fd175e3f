"""Every act and read an operator has, whichever face asks (the command line, the API): each
takes only the parts it needs, is audited in one place, and answers with the shared models.
"""
