"""duetfair.audit"""
