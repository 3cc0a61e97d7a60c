"""Admin forms for operators' money movements."""
from django import forms

from .models import Asset


class FundingForm(forms.Form):
    DIRECTIONS = (("deposit", "Fund (deposit)"), ("withdraw", "Debit (withdrawal)"))

    direction = forms.ChoiceField(choices=DIRECTIONS)
    asset = forms.ModelChoiceField(queryset=Asset.objects.all())
    amount = forms.DecimalField(max_digits=38, decimal_places=18, min_value=0)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), min_length=5, help_text="Recorded in the ledger.")
