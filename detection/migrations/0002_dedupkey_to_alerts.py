# DedupKey now belongs to the alerts app (alerts/migrations/0007); its table stays where it is.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('detection', '0001_initial'),
        ('alerts', '0007_dedupkey_from_detection'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name='DedupKey')]),
    ]
