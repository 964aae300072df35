"""duetfair.models"""
