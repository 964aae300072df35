"""duetfair.objectives"""
