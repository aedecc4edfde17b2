from p5model import Elem
DOCS = {}
def ncts_extra(hdr):
    return {}
def build_common_and_admin(*a):
    pass
